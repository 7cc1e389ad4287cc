"""Deliberate bugs, as data: each one a small textual patch and the tests that must catch it.

`python -m tests.planted` applies each patch to a temporary copy of the repository (never
to the checkout), runs the named tests there and reports, per bug and store, whether some
test failed (caught) or none did (survived).

A bug is a dict:

``name``    short and stable: the runner's --bug picks bugs by it.
``intent``  the bug in words, so that it can be planted again once the code it patches has
            moved. The job rules are written once (store/rules.py, store/sql.py), so most
            bugs are one edit; the batched hot path is each backend's own.
``path``, ``old``, ``new``
            the edit: ``old`` must occur exactly once in ``path``, and becomes ``new``.
``also``    further edits of the same bug (the same rule written in another backend), each a
            dict with path, old, new.
``stores``  the stores the bug lives in: every one must see a test fail (default all three;
            "any" for a bug no store sees, such as how a job process is started).
``tests``   pytest node ids. ``{store}`` in a parametrised id is filled in with each store;
            an id without brackets runs every parametrisation.
"""

from __future__ import annotations

from typing import Any

SQLITE = "src/agentfleet/store/sqlite.py"
POSTGRES = "src/agentfleet/store/postgres.py"
RULES = "src/agentfleet/store/rules.py"
SQL = "src/agentfleet/store/sql.py"
VERBS = "src/agentfleet/store/verbs.py"
DIALECT = "src/agentfleet/store/dialect.py"
FLEET = "src/agentfleet/fleet.py"
RUNNER = "src/agentfleet/runner.py"
WORKER = "src/agentfleet/worker/core.py"
WORK_CLI = "src/agentfleet/cli/work.py"
SUPERVISE = "src/agentfleet/supervise.py"
LEFTOVERS = "src/agentfleet/leftovers.py"
AIO = "src/agentfleet/aio.py"
LEASE_TOKENS = "src/agentfleet/store/lease_tokens.py"
DISPATCH = "src/agentfleet/dispatch.py"
LIFETIME = "tests/worker/test_job_lifetime.py"
STORES = ("memory", "sqlite", "postgres")

FENCING = "tests/contract/test_fencing.py"
PLAN_FENCING = "tests/plans/test_plan_fencing.py"
IN_TRANSACTION = "tests/contract/test_enqueue_in_transaction.py"


def lines(indent: int, *rows: str) -> str:
    """Source lines at one indentation, each ending in a newline (rows may indent more)."""
    return "".join(" " * indent + row + "\n" for row in rows)


def _fencing_tests(verb: str) -> list[str]:
    """The stale-lease scenarios, each run with the one verb the bug breaks."""
    scenarios = [
        "test_stale_write_after_a_takeover",
        "test_stale_write_after_a_reap_and_a_reclaim",
        "test_stale_write_after_its_own_retry",
        "test_stale_write_after_its_own_release",
    ]
    tests = [f"{FENCING}::{name}[{{store}}-{verb}]" for name in scenarios]
    tests.append(f"{PLAN_FENCING}::test_a_stale_write_leaves_the_plan_step_alone[{{store}}-{verb}]")
    return tests


BUGS: list[dict[str, Any]] = [
    {
        "name": "claim-ignores-plan-status",
        "intent": "The claim queries (by id and claim_next) no longer check that a plan job's "
        "plan is running: the jobs of a paused, failed or cancelled plan get claimed.",
        "path": RULES,
        "old": "SELECT 1 FROM plans p WHERE p.id = j.plan_id AND p.status = 'running'))",
        "new": "SELECT 1 FROM plans p WHERE p.id = j.plan_id AND p.status IS NOT NULL))",
        "tests": [
            "tests/plans/test_plan_claims.py::test_a_paused_plan_holds_its_queued_job",
            "tests/plans/test_plan_claims.py::test_a_retried_step_of_a_failed_plan_waits_for_resume",
            "tests/plans/test_plan_claims.py::test_a_retried_step_of_a_cancelled_plan_never_runs",
            "tests/plans/test_plan_claims.py::test_the_fast_path_skips_a_paused_plan",
        ],
    },
    {
        "name": "retry-requeues-succeeded",
        "intent": "retry_job also re-queues a succeeded job (its result erased, run again).",
        "path": RULES,
        "old": "RETRYABLE = f\"{RETRY.guard('j')} AND {PLAN_RUNNING}\"",
        "new": "RETRYABLE = f\"({RETRY.guard('j')} OR j.status = 'succeeded') AND {PLAN_RUNNING}\"",
        "tests": [
            "tests/contract/test_retry_job.py::test_a_succeeded_job_is_not_retried",
            "tests/contract/test_retry_job.py::test_only_failed_and_cancelled_jobs_are_retried",
            "tests/plans/test_plan_claims.py::test_a_completed_plans_step_is_not_retried",
            "tests/plans/test_plan_claims.py::test_a_finished_step_is_not_rerun_under_its_dependents",
        ],
    },
    {
        "name": "reconcile-lock-never-refuses",
        "intent": "Fleet.reconcile runs its pass even when another pass holds the reconciler's "
        "single-flight name, so two passes run at once.",
        "path": FLEET,
        "old": 'with self.store.single_flight("reconcile") as mine:\n            if not mine:\n',
        "new": 'with self.store.single_flight("reconcile") as mine:\n'
        "            if mine is None:  # never refuses\n",
        "tests": [
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_while_another_handle_holds_the_lock",
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_inside_a_pass_of_its_own",
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_while_another_process_holds_the_lock",
        ],
    },
    {
        "name": "single-flight-never-refuses",
        "intent": "The same bug one layer down: the store's single flight (the name Fleet."
        "reconcile holds) takes the name over even while its holder's lease is live.",
        "path": VERBS,
        "old": "    WHERE single_flight.expires_at < {now}\n",
        "new": "",
        "tests": [
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_while_another_handle_holds_the_lock",
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_inside_a_pass_of_its_own",
            "tests/plans/test_reconcile_lock.py::test_reconcile_refuses_while_another_process_holds_the_lock",
            "tests/plans/test_reconcile_lock.py::test_one_holder_at_a_time",
            "tests/contract/test_single_flight.py::test_a_held_name_is_refused_to_everyone_else_until_released",
            "tests/contract/test_single_flight.py::test_racing_takers_of_a_free_name_have_exactly_one_winner",
        ],
    },
    {
        "name": "claim-next-never-reaps",
        "intent": "claim_next no longer reaps expired leases first (Fleet._maybe_reap, paced "
        "by reap_interval): a dead worker's job stays running until someone reaps by hand.",
        "path": FLEET,
        "old": "        self._maybe_reap()\n        return self.store.claim_next(*claim, host=",
        "new": "        return self.store.claim_next(*claim, host=",
        "tests": [
            "tests/contract/test_reaping.py::test_claim_next_takes_back_an_expired_lease",
            "tests/contract/test_reaping.py::test_claim_next_ends_an_expired_job_with_no_attempts_left",
            "tests/contract/test_reaping.py::test_claim_next_ends_an_expired_cancelled_job",
            "tests/contract/test_reaping.py::test_reap_interval_paces_the_reaping",
            "tests/plans/test_plan_claims.py::test_claim_next_reaps_a_dead_step_and_the_plan_moves_on",
        ],
    },
    {
        "name": "cancel-restamps-rev",
        "intent": "cancel_job of a job with nothing (more) to cancel still bumps its rev and "
        "updated_at: a no-op re-stamps a finished row (and breaks If-Match on it).",
        "path": VERBS,
        "old": lines(
            8, 'if not (yield Query("SELECT 1 AS one FROM jobs WHERE id = :id", {"id": job_id})):'
        ),
        "new": lines(
            8,
            "if not (",
            "    yield Query(",
            '        "UPDATE jobs SET rev = rev + 1, updated_at = {now} WHERE id = :id "',
            '        "RETURNING 1 AS one",',
            '        {"id": job_id},',
            "    )",
            "):",
        ),
        "tests": [
            "tests/contract/test_cancel.py::test_cancel_of_a_finished_job_changes_nothing",
            "tests/contract/test_cancel.py::test_a_second_cancel_of_a_queued_job_changes_nothing",
            "tests/contract/test_cancel.py::test_a_second_cancel_of_a_running_job_changes_nothing",
            "tests/contract/test_cancel.py::test_a_refused_cancel_keeps_if_match_valid",
            "tests/contract/test_cancel.py::test_a_cancelled_running_job_keeps_when_it_ended",
            "tests/plans/test_plan_claims.py::test_cancel_job_of_a_completed_plans_step_changes_nothing",
        ],
    },
    {
        "name": "job-stdin-inherited",
        "intent": "Job processes inherit the worker's stdin instead of /dev/null: an agent CLI "
        "that reads stdin waits forever when the worker's stdin is an open pipe.",
        "path": RUNNER,
        "old": "                stdin=subprocess.DEVNULL,\n",
        "new": "",
        "also": [{"path": SUPERVISE, "old": lines(12, "os.dup2(null, 0)"), "new": ""}],
        "stores": ("any",),
        "tests": [
            "tests/worker/test_stdin.py::test_a_worker_with_an_open_stdin_gives_its_jobs_eof",
            "tests/worker/test_stdin.py::test_a_job_process_gets_eof_when_its_parent_stdin_is_open",
        ],
    },
    {
        "name": "supervisor-outlived-worker",
        "intent": "The job's supervisor notices that its worker died (EOF on its pipe, a new "
        "parent) but does not kill the job's process group: a SIGKILLed worker's job runs on "
        "until the lease it last renewed runs out (the supervisor's second line of defence, "
        "which the fault runs' short ttl leaves no room to miss; the test's ttl is 60 s).",
        "path": SUPERVISE,
        "old": lines(8, "self.worker_gone = True", "self.kill_all(WORKER_GONE)"),
        "new": lines(8, "self.worker_gone = True"),
        "stores": ("any",),
        "tests": [
            f"{LIFETIME}::test_a_sigkilled_workers_job_dies_with_it_grandchildren_included",
        ],
    },
    {
        "name": "supervisor-ignores-lease",
        "intent": "The supervisor ignores the lease deadline the worker sent: a job whose "
        "worker is stopped (SIGSTOP) past its ttl keeps running while its lease runs out.",
        "path": SUPERVISE,
        "old": "if self.deadline is not None and now >= self.deadline:",
        "new": "if False and self.deadline is not None and now >= self.deadline:",
        "stores": ("any",),
        "tests": [f"{LIFETIME}::test_a_stopped_workers_job_is_killed_before_its_lease_runs_out"],
    },
    {
        "name": "takeover-ignores-leftovers",
        "intent": "A worker that takes a job over on the same host starts it without ending "
        "the earlier attempt's processes still running there.",
        "path": WORKER,
        "old": lines(
            8, "leftovers = find_leftovers(earlier, self.host, lease.epoch) if earlier else []"
        ),
        "new": lines(8, "leftovers = []"),
        "stores": ("any",),
        "tests": [f"{LIFETIME}::test_a_takeover_here_ends_the_earlier_attempts_processes_first"],
    },
    {
        "name": "leftovers-unproven",
        "intent": "A takeover signals the process group its predecessor's run names without "
        "checking that the group's processes carry that attempt's marker: a reused group id "
        "gets someone else's processes killed.",
        "path": LEFTOVERS,
        "old": lines(
            4, "except OSError:  # gone, or not ours to read: not proven", "    return False"
        ),
        "new": lines(4, "except OSError:", "    return True", "return True"),
        "stores": ("any",),
        "tests": [f"{LIFETIME}::test_a_group_not_shown_to_be_the_attempts_is_left_alone"],
    },
    {
        "name": "complete-without-epoch",
        "intent": "complete is fenced only by the job's id and status, not the lease epoch: a "
        "stale holder completes the job its successor is running.",
        "path": SQL,
        "old": lines(16, 'f"rev = rev + 1 WHERE {_FENCE} AND NOT cancel_requested RETURNING id",'),
        "new": "                \"rev = rev + 1 WHERE id = :id AND status = 'running' \"\n"
        '                "AND NOT cancel_requested RETURNING id",\n',
        "tests": [
            *_fencing_tests("complete"),
            "tests/contract/test_leases.py::test_expired_lease_is_fenced_after_reclaim",
        ],
    },
    {
        "name": "batch-complete-without-epoch",
        "intent": "complete_many and complete_and_claim match their leases by id and status "
        "only: a stale lease in a batch completes the successor's job.",
        "path": SQLITE,
        "old": "WHERE jobs.id = i.id AND jobs.lease_epoch = i.epoch AND",
        "new": "WHERE jobs.id = i.id AND",
        "also": [
            {
                "path": POSTGRES,
                "old": "WHERE jobs.id = input.id AND jobs.lease_epoch = input.epoch AND",
                "new": "WHERE jobs.id = input.id AND",
            }
        ],
        "tests": [
            *_fencing_tests("complete_many"),
            *_fencing_tests("complete_and_claim"),
            f"{FENCING}::test_a_batch_completes_only_the_leases_it_still_holds",
            "tests/contract/test_batches.py::test_complete_many_fences_each_row",
        ],
    },
    {
        "name": "fail-without-epoch",
        "intent": "fail is fenced only by the job's id and status: a stale holder fails (or "
        "re-queues) the job its successor is running.",
        "path": SQL,
        "old": "    WHERE {_FENCE}\n    RETURNING status, run_at, {{now}} AS decided_at",
        "new": "    WHERE id = :id AND status = 'running'\n"
        "    RETURNING status, run_at, {{now}} AS decided_at",
        "tests": [
            *_fencing_tests("fail"),
            "tests/contract/test_leases.py::test_expired_lease_is_fenced_after_reclaim",
        ],
    },
    {
        "name": "release-without-epoch",
        "intent": "release is fenced only by the job's id and status: a stale holder hands "
        "its successor's running job back to the queue.",
        "path": SQL,
        "old": "    WHERE {_FENCE}\n    RETURNING status, queue",
        "new": "    WHERE id = :id AND status = 'running'\n    RETURNING status, queue",
        "tests": [
            *_fencing_tests("release"),
            "tests/contract/test_leases.py::test_release_hands_the_job_back_with_its_attempt",
        ],
    },
    {
        "name": "cancel-restamps-finished-at",
        "intent": "cancel_job of an already finished job re-stamps its finished_at (while "
        "still answering False): when a job ended is rewritten by a no-op.",
        "path": VERBS,
        "old": lines(
            8, 'if not (yield Query("SELECT 1 AS one FROM jobs WHERE id = :id", {"id": job_id})):'
        ),
        "new": lines(
            8,
            "yield Query(",
            '    "UPDATE jobs SET finished_at = {now} WHERE id = :id AND finished_at IS NOT NULL",',
            '    {"id": job_id},',
            ")",
            'if not (yield Query("SELECT 1 AS one FROM jobs WHERE id = :id", {"id": job_id})):',
        ),
        "tests": [
            "tests/contract/test_cancel.py::test_cancel_of_a_finished_job_changes_nothing",
            "tests/contract/test_cancel.py::test_a_second_cancel_of_a_queued_job_changes_nothing",
            "tests/contract/test_cancel.py::test_a_cancelled_running_job_keeps_when_it_ended",
            "tests/contract/test_leases.py::test_cancel_is_idempotent_and_reaches_running_jobs",
            "tests/plans/test_plan_claims.py::test_cancel_job_of_a_completed_plans_step_changes_nothing",
        ],
    },
    {
        "name": "claim-ignores-named-lock",
        "intent": "The claim queries no longer check a job's named lock (free, and first of "
        "its lock in the batch): only the unique index on running locks says no, as an "
        "error (SQLite) or an empty batch (PostgreSQL retries, then gives up).",
        "path": RULES,
        "old": 'f"AND (j.lock IS NULL OR ({LOCK_FREE} AND {FIRST_OF_LOCK})) "\n',
        "new": 'f" "\n',
        "also": [
            {
                "path": RULES,
                "old": "AND j.run_at <= {{now}} AND (j.lock IS NULL OR {LOCK_FREE}) ",
                "new": "AND j.run_at <= {{now}} ",
            },
        ],
        "tests": [
            "tests/contract/test_named_locks.py::test_a_batch_takes_only_the_first_job_of_a_lock",
            "tests/contract/test_named_locks.py::test_a_held_lock_keeps_its_queued_jobs_back",
            "tests/contract/test_named_locks.py::test_the_first_of_a_lock_goes_by_priority",
            "tests/contract/test_named_locks.py::test_a_lock_is_per_name",
            "tests/contract/test_named_locks.py::test_the_fast_path_keeps_a_lock_to_one_job",
            "tests/contract/test_jobs.py::test_named_lock_blocks_while_held_and_one_per_batch",
            "tests/concurrency/test_drain.py::test_lock_sharers_drain_one_at_a_time_without_errors",
        ],
    },
    {
        "name": "merge-rerun-squashes-twice",
        "intent": "A merge run again after an earlier attempt moved the integration branch "
        "(and died before reporting) no longer sees that a squash of its step is already "
        "in, and lands the step a second time as an empty commit.",
        "path": "src/agentfleet/workspaces/merge_job.py",
        "old": 'if git.tree_of("HEAD") == git.tree_of(old):',
        "new": "if False:",
        "stores": ("any",),
        "tests": [
            "tests/workspaces/test_merge_kill.py::test_a_merge_killed_at_any_git_call_leaves_the_branch_old_or_new",
            "tests/workspaces/test_single_merge.py::test_merge_moves_a_clean_checked_out_branch_and_a_second_merge_finds_it_there",
        ],
    },
    {
        "name": "touch-not-checked",
        "intent": "A worktree job's `touch` globs are no longer checked: a change outside "
        "them succeeds and is published.",
        "path": "src/agentfleet/workspaces/execution.py",
        "old": 'stray = touch.violation(self.spec.touch, fields["files_changed"])',
        "new": "stray = None",
        "stores": ("any",),
        "tests": [
            "tests/workspaces/test_touch.py::test_a_change_outside_touch_fails_the_job_without_a_retry",
        ],
    },
    {
        "name": "stale-attempt-publishes",
        "intent": "An attempt whose fenced completion was refused still moves the job's "
        "branch to its own commit when it tidies up.",
        "path": "src/agentfleet/workspaces/execution.py",
        "old": "if won and self._fields is not None:",
        "new": "if self._fields is not None:",
        "stores": ("any",),
        "tests": [
            "tests/workspaces/test_merge_train.py::test_a_stale_attempts_commit_is_never_merged",
            "tests/workspaces/test_worktree_jobs.py::test_only_the_completion_that_won_publishes_its_commit",
        ],
    },
    {
        "name": "templates-not-quoted-in-shell",
        "intent": "Values put into a shell command's template are no longer shell-quoted, "
        "so an upstream agent's text becomes shell syntax.",
        "path": "src/agentfleet/plans/templating.py",
        "old": "finalize=_shell_quote if quote else _plain,",
        "new": "finalize=_plain,",
        "stores": ("any",),
        "tests": [
            "tests/plans/test_templates.py::test_a_shell_command_gets_each_value_quoted_and_argv_items_as_they_are",
        ],
    },
    {
        "name": "templates-rendered-once",
        "intent": "A step's templates are rendered only the first time it is queued: after "
        "a rework it runs with the old upstream results.",
        "path": "src/agentfleet/plans/templating.py",
        "old": "fields = payload.get(TEMPLATES_KEY) or templated(payload)",
        "new": "fields = templated(payload)",
        "stores": STORES,
        "tests": [
            "tests/plans/test_templates.py::test_a_rework_renders_the_step_again_against_the_new_upstream_result",
        ],
    },
    {
        "name": "schedule-slot-not-guarded",
        "intent": "A worker moves a schedule's next slot on without checking that it still "
        "holds the slot it saw, so two workers that found a slot due both start its job.",
        "path": "src/agentfleet/store/schedules.py",
        "old": "WHERE id = :id AND next_at = :slot AND paused = 0",
        "new": "WHERE id = :id AND paused = 0",
        "tests": [
            "tests/contract/test_schedules.py::test_two_workers_with_the_same_snapshot_fire_a_slot_once",
            "tests/contract/test_schedules.py::test_workers_racing_for_twenty_slots_fire_each_once",
        ],
    },
    {
        "name": "skip-does-not-propagate",
        "intent": "Under all_success a step after a skipped one runs anyway, as if the skip "
        "were a success.",
        "path": "src/agentfleet/plans/decide.py",
        "old": (
            "    if any(d.status is JobStatus.SKIPPED for d in deps):\n"
            '        return "skip", "all_success: a dependency was skipped"\n'
            "    if all(d.status is JobStatus.SUCCEEDED for d in deps):"
        ),
        "new": "    if all(d.status in (JobStatus.SUCCEEDED, JobStatus.SKIPPED) for d in deps):",
        "tests": [
            "tests/plans/test_conditions.py::test_a_false_when_skips_the_step_and_the_steps_after_it",
        ],
    },
    {
        "name": "expected-failure-stops-the-plan",
        "intent": "A failure that a one_success or all_done dependent expects stops the plan "
        "like any other.",
        "path": "src/agentfleet/plans/decide.py",
        "old": "TOLERANT = frozenset({ALL_DONE, ONE_SUCCESS})",
        "new": "TOLERANT: frozenset[str] = frozenset()",
        "tests": [
            "tests/plans/test_conditions.py::test_one_success_runs_as_soon_as_one_dependency_succeeds_and_tolerates_failures",
            "tests/plans/test_conditions.py::test_all_done_runs_after_failures_and_skips",
        ],
    },
    {
        "name": "loop-leaves-dependents-on-the-first-iteration",
        "intent": "A loop's next iteration does not move the steps after the loop onto its "
        "new jobs: they run after the first iteration, while the loop still goes on.",
        "path": "src/agentfleet/store/steps.py",
        "old": '"AND NOT (job_id {any:ids})",',
        "new": '"AND FALSE AND NOT (job_id {any:ids})",',
        "tests": [
            "tests/plans/test_loops.py::test_a_loop_runs_until_its_condition_holds_each_iteration_a_new_job",
        ],
    },
    {
        "name": "loop-ends-on-every-advance",
        "intent": "A loop that ended records its end again each time the plan is advanced "
        "(a reconciler pass, a retried request).",
        "path": "src/agentfleet/plans/coordinator.py",
        "old": "if not self._loop_ended_before(tx, end.job_id):",
        "new": "if True:",
        "tests": [
            "tests/plans/test_loops.py::test_advancing_again_starts_each_iteration_once",
        ],
    },
    {
        "name": "loop-ignores-until",
        "intent": "A loop runs to max_iterations whatever its until: says.",
        "path": "src/agentfleet/plans/loops.py",
        "old": "if until and templating.condition_holds(",
        "new": "if False and templating.condition_holds(",
        "tests": [
            "tests/plans/test_loops.py::test_a_loop_runs_until_its_condition_holds_each_iteration_a_new_job",
        ],
    },
    {
        "name": "rate-misses-claims-by-id",
        "intent": "A claim of one job by id does not record its start, so a limit's rate "
        "lets claims by id through without counting them.",
        "path": SQL,
        "old": "limits.record_starts(tx, [job.id])  # its rate counts this start",
        "new": "pass",
        "tests": [
            "tests/contract/test_limits.py::test_a_rate_lets_at_most_that_many_start_in_a_window",
        ],
    },
    {
        "name": "heartbeat-renews-by-id-alone",
        "intent": "The batched renew matches leases by job id and drops the epoch from the "
        "fence: a stale worker's heartbeat extends the lease of the worker that took its "
        "job over, and is told its lease still holds.",
        "path": SQL,
        "old": "updated_at = {now} WHERE {leases:pairs} AND status = 'running' ",
        "new": "updated_at = {now} WHERE id {any:ids} AND status = 'running' ",
        "also": [
            {
                "path": SQL,
                "old": '{"pairs": pairs, "ttl": ttl}',
                "new": '{"ids": [lease.job_id for lease in leases], "ttl": ttl}',
            }
        ],
        "tests": [
            "tests/contract/test_leases.py::test_renew_many_renews_each_lease_by_its_own_epoch"
            "[{store}]"
        ],
    },
    {
        "name": "batch-drops-refused-completions",
        "intent": "The worker takes every python task of a batch as completed, also those "
        "the store refused (a cancel asked for, a lease lost): a cancelled job is never "
        "closed and stays running until its lease runs out.",
        "path": "src/agentfleet/worker/settle.py",
        "old": "        won = set(completed)\n",
        "new": "        won = {slot.lease.job_id for slot in slots}\n",
        "stores": ("sqlite", "postgres"),
        "tests": [
            "tests/worker/test_batches.py::"
            "test_a_task_cancelled_before_its_batch_is_written_ends_cancelled[{store}]"
        ],
    },
    {
        "name": "heartbeat-one-by-one",
        "intent": "The worker renews each lease in a statement of its own: a worker holding "
        "a thousand leases makes a thousand writes per heartbeat.",
        "path": WORKER,
        "old": "            answers = self.fleet.renew_many([slot.lease for slot in due], "
        "ttl=self.ttl)\n",
        "new": "            answers = [self.fleet.renew_many([slot.lease], ttl=self.ttl)[0] "
        "for slot in due]\n",
        "stores": ("any",),
        "tests": [
            "tests/worker/test_batches.py::test_one_heartbeat_renews_every_running_lease_at_once"
        ],
    },
    {
        "name": "worker-waits-without-the-store",
        "intent": "The worker's loop sleeps on its own pipe only and never asks the store to "
        "wake it (no data_version watch on SQLite, no LISTEN on PostgreSQL): an idle worker "
        "starts new work only when its poll backoff comes round.",
        "path": WORKER,
        "old": "            if self.fleet.wait_for_jobs(max(0.0, timeout), "
        "interrupt=self._waker.fileno()):\n                self._notified = True\n",
        "new": "            self._waker.wait(timeout)\n",
        "stores": ("sqlite", "postgres"),
        "tests": [
            "tests/worker/test_wake.py::test_an_idle_worker_starts_a_new_job_without_polling"
            "[{store}]",
            "tests/worker/test_wake.py::test_the_step_after_an_approval_starts_without_polling"
            "[{store}]",
        ],
    },
    {
        "name": "sqlite-wake-forgets-between-waits",
        "intent": "SQLite's wait_for_jobs starts each call from the data_version it reads "
        "then: a commit that lands while the worker is busy between two waits is missed.",
        "path": SQLITE,
        "old": 'seen: int | None = getattr(self._seen, "version", None)',
        "new": "seen: int | None = None",
        "stores": ("sqlite",),
        "tests": [
            "tests/contract/test_workers_and_output.py::"
            "test_a_commit_between_two_waits_wakes_the_next_one[sqlite]",
        ],
    },
    {
        "name": "worker-listens-on-a-second-connection",
        "intent": "`agentfleet worker` opens the default pool of four connections, so its "
        "LISTEN takes a dedicated one beside its queries': two or more connections per "
        "worker, and 60 workers no longer fit in max_connections=100.",
        "path": WORK_CLI,
        "old": "WORKER_POOL_SIZE = 1\n",
        "new": "WORKER_POOL_SIZE = 4\n",
        "stores": ("any",),  # PostgreSQL only; the tests are not parametrised by store
        "tests": [
            "tests/worker/test_pg_connections.py::test_a_worker_process_holds_one_connection",
            "tests/worker/test_pg_connections.py::"
            "test_ten_worker_processes_hold_one_connection_each",
        ],
    },
    {
        "name": "worker-logs-ignore-json",
        "intent": "`agentfleet worker --log-format json` is accepted but ignored: the worker "
        "logs plain-text lines.",
        "path": WORK_CLI,
        "old": "json_lines = log_format is LogFormat.JSON",
        "new": "json_lines = False",
        "stores": ("any",),
        "tests": [
            "tests/cli/test_worker_json_logs.py::test_every_worker_log_line_is_a_named_json_event",
            "tests/cli/test_worker_json_logs.py::test_a_worker_that_cannot_start_says_why_in_json",
        ],
    },
    {
        "name": "enqueue-ignores-callers-transaction",
        "intent": "enqueue, enqueue_many and submit_plan given conn= write in the store's own "
        "transaction instead of the caller's: the job commits at once, whatever the caller "
        "then does, and the memory store no longer refuses a connection.",
        "path": DIALECT,
        "old": lines(12, "return self.joined(conn)"),
        "new": lines(12, "return self.tx()"),
        "tests": [
            f"{IN_TRANSACTION}::test_a_rollback_leaves_no_job_no_event_and_no_row_of_the_callers"
            f"[{store}]"
            for store in ("sqlite", "postgres")
        ]
        + [f"{IN_TRANSACTION}::test_the_memory_store_refuses_every_connection[memory]"],
    },
    {
        "name": "dedupe-repeat-takes-an-id",
        "intent": "An enqueue whose dedupe key a live job holds tries the insert first: the "
        "unique index refuses it after it drew an id, so the next new job skips one.",
        "path": SQL,
        "old": lines(
            12,
            "if new.dedupe_key is not None:",
            '    rows = yield Query(_LIVE_HOLDER, {"key": new.dedupe_key}, tuples=True)',
            "    if rows:",
            "        return self.read.job(rows[0]), False",
            "rows = yield Query(_INSERT_JOB, params, tuples=True)",
            "if rows:",
            "    return self.read.job(rows[0]), True",
        ),
        "new": lines(
            12,
            "rows = yield Query(_INSERT_JOB, params, tuples=True)",
            "if rows:",
            "    return self.read.job(rows[0]), True",
            'rows = yield Query(_LIVE_HOLDER, {"key": new.dedupe_key}, tuples=True)',
            "if rows:",
            "    return self.read.job(rows[0]), False",
        ),
        "tests": ["tests/contract/test_jobs.py::test_a_dedupe_repeat_takes_no_job_id[{store}]"],
    },
    {
        "name": "aio-verbs-on-threads",
        "intent": "On PostgreSQL the asyncio verbs meant to be native (enqueue, get_job, "
        "list_jobs, cancel, retry, wait's reads) run the store's operations on a worker "
        "thread over the synchronous pool instead of on the async pool: the same answers, "
        "but each call holds a thread.",
        "path": AIO,
        "old": lines(8, "return await self._pg.perform(operation)"),
        "new": lines(
            8,
            "from agentfleet.store.ops import perform",
            "",
            "return await asyncio.to_thread(perform, self.sync.store.dialect, operation)",
        ),
        "stores": ("any",),  # PostgreSQL only; the test is not parametrised by store
        "tests": [
            "tests/aio/test_postgres_jobs.py::"
            "test_the_native_verbs_run_on_the_async_pool_with_no_thread",
        ],
    },
    {
        "name": "aio-plan-verbs-on-threads",
        "intent": "On PostgreSQL the asyncio plan verbs (submit_plan, approve, reject, "
        "resume, cancel_plan, abandon_plan, the plan reads) run the synchronous fleet's "
        "verb on a worker thread instead of the plans layer's code on the async pool: the "
        "same answers, but each call holds a thread and a synchronous connection.",
        "path": AIO,
        "old": lines(8, "return await self._bridge(getattr(self._bridged, name), *args, **kwargs)"),
        "new": lines(8, "return await self._call(getattr(self.sync, name), *args, **kwargs)"),
        "stores": ("any",),  # PostgreSQL only; the test is not parametrised by store
        "tests": [
            "tests/aio/test_postgres_plans.py::"
            "test_a_review_is_rejected_reworked_and_approved_twice_at_once_with_one_winner",
        ],
    },
    {
        "name": "lease-token-outlives-its-lease",
        "intent": "A job's lease token is checked against the job alone, not against the "
        "epoch it was minted for: after a takeover the stale attempt's token still opens the "
        "lease API (its plan write is then refused by the fence, as 409 rather than 401).",
        "path": LEASE_TOKENS,
        "old": lines(
            4, "SELECT id FROM jobs WHERE id = :id AND lease_epoch = :epoch AND status = 'running'"
        ),
        "new": lines(
            4, "SELECT id FROM jobs WHERE id = :id AND :epoch = :epoch AND status = 'running'"
        ),
        "stores": ("sqlite", "postgres"),
        "tests": [
            "tests/web/test_lease_api.py::"
            "test_a_step_reads_writes_and_enqueues_then_its_token_dies_with_its_lease[{store}]",
        ],
    },
    {
        "name": "lease-job-gets-the-database-too",
        "intent": "A db_access job given a lease token also gets the worker's database URL, "
        "so an agent in it could still write any job: the token was meant to replace it.",
        "path": DISPATCH,
        "old": lines(8, "elif ctx.db_url is not None:"),
        "new": lines(8, "if ctx.db_url is not None:"),
        "stores": ("any",),
        "tests": [
            "tests/remote/test_lease_jobs.py::"
            "test_a_direct_worker_with_a_lease_server_gives_a_token_not_the_database",
        ],
    },
    {
        "name": "worker-api-trusts-the-current-lease",
        "intent": "The worker API judges a remote worker's lease by the job alone: it writes "
        "(renew, complete, fail, ...) at the job's current epoch, whoever holds it, so a "
        "worker woken after a takeover renews or completes its successor's attempt.",
        "path": "src/agentfleet/web/api_worker.py",
        "old": lines(
            4, "if job.lease_epoch != lease.epoch or job.status is not JobStatus.RUNNING:"
        ),
        "new": lines(
            4,
            "lease = Lease(lease.job_id, job.lease_epoch, lease.worker, lease.expires_at,",
            "              lease.attempt, lease.run_id, lease.ttl)",
            "if job.status is not JobStatus.RUNNING:",
        ),
        "also": [
            {
                "path": "src/agentfleet/web/api_worker.py",
                "old": lines(4, "if job.worker != who.name:", "    raise ApiError("),
                "new": lines(4, "if job.worker is None:", "    raise ApiError("),
            }
        ],
        "stores": ("sqlite", "postgres"),
        "tests": [
            "tests/faults/test_faults.py::"
            "test_direct_and_remote_workers_under_every_fault[{store}]",
        ],
    },
    {
        "name": "worktrees-not-serialised",
        "intent": "Worktrees are made and removed without the repository's worktree lock, so "
        "two at once can fail reading each other's half-made entry.",
        "path": "src/agentfleet/workspaces/git.py",
        "old": "            fcntl.flock(handle, fcntl.LOCK_EX)\n",
        "new": "",
        "stores": ("any",),
        "tests": [
            "tests/workspaces/test_worktree.py::test_worktrees_made_and_removed_at_once_in_one_repository_all_succeed",
        ],
    },
    {
        "name": "rate-window-from-transaction-start",
        "intent": "On PostgreSQL a rate's window ends at the claim's transaction start, "
        "taken before the claim waited for the limits lock: a start made while another "
        "claim waited looks older than it is, and the rate lets two start at once.",
        "path": POSTGRES,
        "old": "ago=\"(statement_timestamp() - {column} * interval '1 second')\",",
        "new": "ago=\"(now() - {column} * interval '1 second')\",",
        "also": [
            {
                "path": "src/agentfleet/store/limits.py",
                "old": "SELECT j.limit_name, {stamp} FROM jobs j",
                "new": "SELECT j.limit_name, {now} FROM jobs j",
            }
        ],
        "stores": ("any",),
        "tests": [
            "tests/contract/test_limits.py::"
            "test_a_claim_that_waited_for_the_limits_lock_counts_its_start_from_then",
        ],
    },
]

"""PostgreSQL schema, as versioned migrations applied in order on open.

Everything lives in the `agentfleet` schema so that a shared database stays tidy.
"""

from __future__ import annotations

SCHEMA = "agentfleet"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE jobs (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            queue            text    NOT NULL,
            engine           text    NOT NULL,
            payload          jsonb   NOT NULL,
            status           text    NOT NULL CHECK (status IN
                                 ('waiting','queued','running','succeeded','failed','cancelled')),
            priority         integer NOT NULL DEFAULT 0,
            lock             text,
            max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
            attempts         integer NOT NULL DEFAULT 0,
            lease_epoch      bigint  NOT NULL DEFAULT 0,
            worker           text,
            lease_expires_at timestamptz,
            timeout          double precision,
            run_at           timestamptz NOT NULL DEFAULT now(),
            dedupe_key       text,
            rev              bigint  NOT NULL DEFAULT 1,
            result           jsonb,
            error            text,
            cancel_requested boolean NOT NULL DEFAULT false,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            finished_at      timestamptz
        );
        -- Few indexes on purpose: every index is written on every claim and completion.
        CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE status = 'queued';
        CREATE INDEX jobs_expiry ON jobs (lease_expires_at) WHERE status = 'running';
        CREATE INDEX jobs_by_lock ON jobs (lock, status) WHERE lock IS NOT NULL;
        CREATE UNIQUE INDEX jobs_one_running_per_lock ON jobs (lock)
            WHERE status = 'running' AND lock IS NOT NULL;
        CREATE UNIQUE INDEX jobs_one_live_per_dedupe_key ON jobs (dedupe_key)
            WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');

        CREATE TABLE runs (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id      bigint  NOT NULL,  -- no FK: a per-row check on the hot path; the
                                        -- claim statement creates runs only for real jobs
            attempt     integer NOT NULL,
            epoch       bigint  NOT NULL,
            worker      text    NOT NULL,
            status      text    NOT NULL,
            started_at  timestamptz NOT NULL,
            finished_at timestamptz,
            error       text,
            exit_code   integer,
            stdout      text,
            stderr      text,
            UNIQUE (job_id, epoch)
        );

        CREATE TABLE events (
            id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id bigint,
            kind   text NOT NULL,
            at     timestamptz NOT NULL DEFAULT now(),
            epoch  bigint,
            worker text,
            data   jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_by_job ON events (job_id, id);
        """,
    ),
]

MIGRATIONS.append(
    (
        2,
        """
        CREATE TABLE workers (
            name        text PRIMARY KEY,
            host        text    NOT NULL,
            pid         integer NOT NULL,
            queues      jsonb   NOT NULL,
            concurrency integer NOT NULL,
            started_at  timestamptz NOT NULL DEFAULT now(),
            last_seen   timestamptz NOT NULL DEFAULT now(),
            stopped_at  timestamptz
        );
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        """
        CREATE TABLE plans (
            id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name               text    NOT NULL,
            mode               text    NOT NULL CHECK (mode IN ('auto', 'supervised')),
            max_parallel       integer NOT NULL CHECK (max_parallel >= 1),
            status             text    NOT NULL CHECK (status IN
                ('pending','running','paused','completed','failed','cancelled')),
            checkpoint         text,
            checkpoint_context jsonb,
            completed_at       timestamptz,
            pr_url             text,
            metadata           jsonb   NOT NULL DEFAULT '{}',
            rev                bigint  NOT NULL DEFAULT 1,
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX plans_by_status ON plans (status);
        ALTER TABLE jobs ADD COLUMN plan_id bigint REFERENCES plans (id);
        ALTER TABLE jobs ADD COLUMN step text;
        CREATE INDEX jobs_by_plan ON jobs (plan_id, status) WHERE plan_id IS NOT NULL;
        CREATE TABLE plan_deps (
            plan_id    bigint NOT NULL REFERENCES plans (id),
            job_id     bigint NOT NULL REFERENCES jobs (id),
            depends_on bigint NOT NULL REFERENCES jobs (id),
            PRIMARY KEY (job_id, depends_on)
        );
        ALTER TABLE events ADD COLUMN plan_id bigint;
        CREATE INDEX events_by_plan ON events (plan_id, id) WHERE plan_id IS NOT NULL;
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        """
        CREATE TABLE ledger (
            job_id     bigint NOT NULL REFERENCES jobs (id),
            key        text   NOT NULL,
            epoch      bigint NOT NULL,
            value      jsonb  NOT NULL,
            worker     text   NOT NULL,
            written_at timestamptz NOT NULL,
            PRIMARY KEY (job_id, key, epoch)
        );
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        """
        -- A run row is written twice (opened by the claim, closed by the completion); room
        -- on its page lets the close be a HOT update, with no new index entries.
        ALTER TABLE runs SET (fillfactor = 50);
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        """
        -- Each pause of a plan gets the next number, so an approval meant for one pause of
        -- a checkpoint can never pass a later pause of the same checkpoint.
        ALTER TABLE plans ADD COLUMN pauses integer NOT NULL DEFAULT 0;
        -- Single-flight passes (the reconciler): one holder per name until it lets go or
        -- its lease runs out, decided by a conditional write like every other claim.
        CREATE TABLE single_flight (
            name       text PRIMARY KEY,
            holder     text NOT NULL,
            expires_at timestamptz NOT NULL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        """
        -- A plan may be abandoned: given up for good.
        ALTER TABLE plans DROP CONSTRAINT plans_status_check;
        ALTER TABLE plans ADD CONSTRAINT plans_status_check CHECK (status IN
            ('pending','running','paused','completed','failed','cancelled','abandoned'));
        """,
    )
)

MIGRATIONS.append(
    (
        8,
        """
        -- Schedules: a job or plan file run on a cron expression. `next_at` is the next
        -- slot, and a worker takes a slot by moving it on with a conditional write.
        CREATE TABLE schedules (
            id           bigserial   PRIMARY KEY,
            name         text        NOT NULL UNIQUE,
            cron         text        NOT NULL,
            tz           text        NOT NULL,
            kind         text        NOT NULL CHECK (kind IN ('job', 'plan')),
            text         text        NOT NULL,
            source       text,
            engines      text        NOT NULL DEFAULT '[]',
            paused       integer     NOT NULL DEFAULT 0,
            catch_up     text        NOT NULL CHECK (catch_up IN ('skip', 'once')),
            overlap      text        NOT NULL CHECK (overlap IN ('allow', 'skip')),
            next_at      timestamptz NOT NULL,
            last_slot    timestamptz,
            last_job_id  bigint,
            last_plan_id bigint,
            last_outcome text,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL
        );
        CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
        """,
    )
)

MIGRATIONS.append(
    (
        9,
        """
        -- A plan step may be skipped: its condition or trigger rule left it out.
        ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
        ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN
            ('waiting','queued','running','succeeded','failed','cancelled','skipped'));
        """,
    )
)

MIGRATIONS.append(
    (
        10,
        """
        -- Where an attempt's processes run: a worker that takes the job over on the same
        -- host makes sure the previous attempt's process group is gone before it starts.
        ALTER TABLE runs ADD COLUMN host text, ADD COLUMN pgid bigint;
        """,
    )
)

MIGRATIONS.append(
    (
        11,
        """
        -- What an agent said about its run (session, cost, tokens): budgets sum the cost,
        -- a retry resumes the session. A plan's budget caps the cost of all its runs. A
        -- retried job prefers the host of its failed attempt (where that session is).
        ALTER TABLE runs ADD COLUMN agent jsonb;
        ALTER TABLE jobs ADD COLUMN prefer_host text;
        ALTER TABLE plans ADD COLUMN budget_usd double precision;
        """,
    )
)

MIGRATIONS.append(
    (
        12,
        """
        -- Fleet-wide limits: at most max_running jobs naming a limit run at once, across
        -- every worker. A job names its limit in limit_name (kept from its payload).
        CREATE TABLE limits (
            name text PRIMARY KEY,
            max_running integer NOT NULL CHECK (max_running >= 0),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE jobs ADD COLUMN limit_name text;
        CREATE INDEX jobs_limit_live ON jobs (limit_name, status)
            WHERE limit_name IS NOT NULL AND status IN ('queued', 'running');
        """,
    )
)

MIGRATIONS.append(
    (
        13,
        """
        -- Rate limits: a limit may also allow at most rate_count starts of its jobs in any
        -- rate_seconds, by the store's clock. Each start of such a job is a row of
        -- limit_starts, pruned once it falls out of the window.
        ALTER TABLE limits ADD COLUMN rate_count integer CHECK (rate_count >= 0);
        ALTER TABLE limits ADD COLUMN rate_seconds double precision CHECK (rate_seconds > 0);
        CREATE TABLE limit_starts (
            name text NOT NULL,
            at timestamptz NOT NULL
        );
        CREATE INDEX limit_starts_by_name ON limit_starts (name, at);
        """,
    )
)

MIGRATIONS.append(
    (
        14,
        """
        -- Fleet-wide settings (agentfleet config): e.g. retention, the age past which
        -- workers prune finished jobs. Also the time of the last automatic prune.
        CREATE TABLE settings (
            name       text PRIMARY KEY,
            value      text NOT NULL,
            updated_at timestamptz NOT NULL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        15,
        """
        -- API tokens with a role (agentfleet tokens create): only a hash of each secret is
        -- kept. A name is unique among the live tokens, so a revoked name can be reused.
        CREATE TABLE tokens (
            id           text PRIMARY KEY,
            name         text NOT NULL,
            role         text NOT NULL CHECK (role IN ('worker', 'read', 'operate', 'admin')),
            secret_hash  text NOT NULL,
            created_at   timestamptz NOT NULL,
            last_used_at timestamptz,
            revoked_at   timestamptz
        );
        CREATE UNIQUE INDEX tokens_one_live_per_name ON tokens (name) WHERE revoked_at IS NULL;
        """,
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]

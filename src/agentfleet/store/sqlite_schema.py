"""SQLite schema, as versioned migrations applied in order on open."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE jobs (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            queue            TEXT    NOT NULL,
            engine           TEXT    NOT NULL,
            payload          TEXT    NOT NULL,
            status           TEXT    NOT NULL CHECK (status IN
                                 ('waiting','queued','running','succeeded','failed','cancelled')),
            priority         INTEGER NOT NULL DEFAULT 0,
            lock             TEXT,
            max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
            attempts         INTEGER NOT NULL DEFAULT 0,
            lease_epoch      INTEGER NOT NULL DEFAULT 0,
            worker           TEXT,
            lease_expires_at REAL,
            timeout          REAL,
            run_at           REAL    NOT NULL,
            dedupe_key       TEXT,
            rev              INTEGER NOT NULL DEFAULT 1,
            result           TEXT,
            error            TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at       REAL    NOT NULL,
            updated_at       REAL    NOT NULL,
            finished_at      REAL
        );
        -- Few indexes on purpose: every index is written on every claim and completion.
        CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE status = 'queued';
        CREATE INDEX jobs_expiry ON jobs (lease_expires_at) WHERE status = 'running';
        CREATE INDEX jobs_by_lock ON jobs (lock, status) WHERE lock IS NOT NULL;
        -- The named-lock rule, enforced by the database: one running job per lock.
        CREATE UNIQUE INDEX jobs_one_running_per_lock ON jobs (lock)
            WHERE status = 'running' AND lock IS NOT NULL;
        -- At most one live job per dedupe key.
        CREATE UNIQUE INDEX jobs_one_live_per_dedupe_key ON jobs (dedupe_key)
            WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');

        CREATE TABLE runs (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id      INTEGER NOT NULL REFERENCES jobs (id),
            attempt     INTEGER NOT NULL,
            epoch       INTEGER NOT NULL,
            worker      TEXT    NOT NULL,
            status      TEXT    NOT NULL,
            started_at  REAL    NOT NULL,
            finished_at REAL,
            error       TEXT,
            exit_code   INTEGER,
            stdout      TEXT,
            stderr      TEXT,
            UNIQUE (job_id, epoch)
        );
        CREATE INDEX runs_open ON runs (job_id) WHERE status = 'running';

        CREATE TABLE events (
            id     INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER,
            kind   TEXT NOT NULL,
            at     REAL NOT NULL,
            epoch  INTEGER,
            worker TEXT,
            data   TEXT NOT NULL DEFAULT '{}'
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
            name        TEXT PRIMARY KEY,
            host        TEXT    NOT NULL,
            pid         INTEGER NOT NULL,
            queues      TEXT    NOT NULL,
            concurrency INTEGER NOT NULL,
            started_at  REAL    NOT NULL,
            last_seen   REAL    NOT NULL,
            stopped_at  REAL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        """
        CREATE TABLE plans (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            name               TEXT    NOT NULL,
            mode               TEXT    NOT NULL CHECK (mode IN ('auto', 'supervised')),
            max_parallel       INTEGER NOT NULL CHECK (max_parallel >= 1),
            status             TEXT    NOT NULL CHECK (status IN
                ('pending','running','paused','completed','failed','cancelled')),
            checkpoint         TEXT,
            checkpoint_context TEXT,
            completed_at       REAL,
            pr_url             TEXT,
            metadata           TEXT    NOT NULL DEFAULT '{}',
            rev                INTEGER NOT NULL DEFAULT 1,
            created_at         REAL    NOT NULL,
            updated_at         REAL    NOT NULL
        );
        CREATE INDEX plans_by_status ON plans (status);
        ALTER TABLE jobs ADD COLUMN plan_id INTEGER REFERENCES plans (id);
        ALTER TABLE jobs ADD COLUMN step TEXT;
        CREATE INDEX jobs_by_plan ON jobs (plan_id, status) WHERE plan_id IS NOT NULL;
        CREATE TABLE plan_deps (
            plan_id    INTEGER NOT NULL REFERENCES plans (id),
            job_id     INTEGER NOT NULL REFERENCES jobs (id),
            depends_on INTEGER NOT NULL REFERENCES jobs (id),
            PRIMARY KEY (job_id, depends_on)
        );
        ALTER TABLE events ADD COLUMN plan_id INTEGER;
        CREATE INDEX events_by_plan ON events (plan_id, id) WHERE plan_id IS NOT NULL;
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        """
        -- Fenced writes: what a job wrote through the coordinator, one row per key and epoch.
        CREATE TABLE ledger (
            job_id     INTEGER NOT NULL REFERENCES jobs (id),
            key        TEXT    NOT NULL,
            epoch      INTEGER NOT NULL,
            value      TEXT    NOT NULL,
            worker     TEXT    NOT NULL,
            written_at REAL    NOT NULL,
            PRIMARY KEY (job_id, key, epoch)
        );
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        """
        -- Every lookup of a run names its job (and mostly its epoch): the (job_id, epoch)
        -- key serves them all, and this index was one more insert and delete per claim.
        DROP INDEX runs_open;
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        """
        -- Each pause of a plan gets the next number, so an approval meant for one pause of
        -- a checkpoint can never pass a later pause of the same checkpoint.
        ALTER TABLE plans ADD COLUMN pauses INTEGER NOT NULL DEFAULT 0;
        -- Single-flight passes (the reconciler): one holder per name until it lets go or
        -- its lease runs out, decided by a conditional write like every other claim.
        CREATE TABLE single_flight (
            name       TEXT PRIMARY KEY,
            holder     TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        """
        -- A plan may be abandoned: given up for good. SQLite cannot change a CHECK
        -- constraint in place, so the table is rebuilt (foreign keys are off while the
        -- store migrates, and checked before the migration commits).
        CREATE TABLE plans_v7 (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            name               TEXT    NOT NULL,
            mode               TEXT    NOT NULL CHECK (mode IN ('auto', 'supervised')),
            max_parallel       INTEGER NOT NULL CHECK (max_parallel >= 1),
            status             TEXT    NOT NULL CHECK (status IN
                ('pending','running','paused','completed','failed','cancelled','abandoned')),
            checkpoint         TEXT,
            checkpoint_context TEXT,
            completed_at       REAL,
            pr_url             TEXT,
            metadata           TEXT    NOT NULL DEFAULT '{}',
            rev                INTEGER NOT NULL DEFAULT 1,
            created_at         REAL    NOT NULL,
            updated_at         REAL    NOT NULL,
            pauses             INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO plans_v7 (id, name, mode, max_parallel, status, checkpoint,
            checkpoint_context, completed_at, pr_url, metadata, rev, created_at, updated_at,
            pauses)
        SELECT id, name, mode, max_parallel, status, checkpoint, checkpoint_context,
            completed_at, pr_url, metadata, rev, created_at, updated_at, pauses FROM plans;
        DROP TABLE plans;
        ALTER TABLE plans_v7 RENAME TO plans;
        CREATE INDEX plans_by_status ON plans (status);
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
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            name         TEXT    NOT NULL UNIQUE,
            cron         TEXT    NOT NULL,
            tz           TEXT    NOT NULL,
            kind         TEXT    NOT NULL CHECK (kind IN ('job', 'plan')),
            text         TEXT    NOT NULL,
            source       TEXT,
            engines      TEXT    NOT NULL DEFAULT '[]',
            paused       INTEGER NOT NULL DEFAULT 0,
            catch_up     TEXT    NOT NULL CHECK (catch_up IN ('skip', 'once')),
            overlap      TEXT    NOT NULL CHECK (overlap IN ('allow', 'skip')),
            next_at      REAL    NOT NULL,
            last_slot    REAL,
            last_job_id  INTEGER,
            last_plan_id INTEGER,
            last_outcome TEXT,
            created_at   REAL    NOT NULL,
            updated_at   REAL    NOT NULL
        );
        CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
        """,
    )
)

MIGRATIONS.append(
    (
        9,
        """
        -- A plan step may be skipped: its condition or trigger rule left it out. SQLite
        -- cannot change a CHECK constraint in place, so the table is rebuilt (foreign keys
        -- are off while the store migrates, and checked before the migration commits).
        CREATE TABLE jobs_v9 (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            queue            TEXT    NOT NULL,
            engine           TEXT    NOT NULL,
            payload          TEXT    NOT NULL,
            status           TEXT    NOT NULL CHECK (status IN ('waiting','queued','running',
                                 'succeeded','failed','cancelled','skipped')),
            priority         INTEGER NOT NULL DEFAULT 0,
            lock             TEXT,
            max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
            attempts         INTEGER NOT NULL DEFAULT 0,
            lease_epoch      INTEGER NOT NULL DEFAULT 0,
            worker           TEXT,
            lease_expires_at REAL,
            timeout          REAL,
            run_at           REAL    NOT NULL,
            dedupe_key       TEXT,
            rev              INTEGER NOT NULL DEFAULT 1,
            result           TEXT,
            error            TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at       REAL    NOT NULL,
            updated_at       REAL    NOT NULL,
            finished_at      REAL,
            plan_id          INTEGER REFERENCES plans (id),
            step             TEXT
        );
        INSERT INTO jobs_v9 (id, queue, engine, payload, status, priority, lock, max_attempts,
            attempts, lease_epoch, worker, lease_expires_at, timeout, run_at, dedupe_key, rev,
            result, error, cancel_requested, created_at, updated_at, finished_at, plan_id, step)
        SELECT id, queue, engine, payload, status, priority, lock, max_attempts, attempts,
            lease_epoch, worker, lease_expires_at, timeout, run_at, dedupe_key, rev, result,
            error, cancel_requested, created_at, updated_at, finished_at, plan_id, step
        FROM jobs;
        DROP TABLE jobs;
        ALTER TABLE jobs_v9 RENAME TO jobs;
        CREATE INDEX jobs_ready ON jobs (priority DESC, id) WHERE status = 'queued';
        CREATE INDEX jobs_expiry ON jobs (lease_expires_at) WHERE status = 'running';
        CREATE INDEX jobs_by_lock ON jobs (lock, status) WHERE lock IS NOT NULL;
        CREATE UNIQUE INDEX jobs_one_running_per_lock ON jobs (lock)
            WHERE status = 'running' AND lock IS NOT NULL;
        CREATE UNIQUE INDEX jobs_one_live_per_dedupe_key ON jobs (dedupe_key)
            WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running');
        CREATE INDEX jobs_by_plan ON jobs (plan_id, status) WHERE plan_id IS NOT NULL;
        """,
    )
)

MIGRATIONS.append(
    (
        10,
        """
        -- Where an attempt's processes run: a worker that takes the job over on the same
        -- host makes sure the previous attempt's process group is gone before it starts.
        ALTER TABLE runs ADD COLUMN host TEXT;
        ALTER TABLE runs ADD COLUMN pgid INTEGER;
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
        ALTER TABLE runs ADD COLUMN agent TEXT;
        ALTER TABLE jobs ADD COLUMN prefer_host TEXT;
        ALTER TABLE plans ADD COLUMN budget_usd REAL;
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
            name TEXT PRIMARY KEY,
            max_running INTEGER NOT NULL CHECK (max_running >= 0),
            updated_at TEXT NOT NULL
        );
        ALTER TABLE jobs ADD COLUMN limit_name TEXT;
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
        ALTER TABLE limits ADD COLUMN rate_count INTEGER CHECK (rate_count >= 0);
        ALTER TABLE limits ADD COLUMN rate_seconds REAL CHECK (rate_seconds > 0);
        CREATE TABLE limit_starts (
            name TEXT NOT NULL,
            at REAL NOT NULL
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
            name       TEXT PRIMARY KEY,
            value      TEXT NOT NULL,
            updated_at REAL NOT NULL
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
            id           TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            role         TEXT NOT NULL CHECK (role IN ('worker', 'read', 'operate', 'admin')),
            secret_hash  TEXT NOT NULL,
            created_at   REAL NOT NULL,
            last_used_at REAL,
            revoked_at   REAL
        );
        CREATE UNIQUE INDEX tokens_one_live_per_name ON tokens (name) WHERE revoked_at IS NULL;
        """,
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]

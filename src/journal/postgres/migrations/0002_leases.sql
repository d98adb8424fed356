-- Schema version 2: who runs which execution (leases). Applied once, like
-- version 1, inside the migration transaction (schema.rs). Every time here
-- is the database's clock (`clock_timestamp()`), never a process's: the
-- machines sharing a store may disagree on the time, the server does not
-- disagree with itself.

-- One row per live process of the store (a worker), inserted when it opens
-- the journal, renewed (`heartbeat_at`) by its lease renewals, deleted when
-- it closes. `lease_ms` is its lease time: its leases are live while its
-- heartbeat is younger than that. A row whose heartbeat is older than ten
-- lease times is deleted by the next claim (a process that died).
CREATE TABLE workers (
    id text COLLATE "C" PRIMARY KEY,
    command text NOT NULL,
    host text NOT NULL,
    pid bigint NOT NULL,
    lease_ms bigint NOT NULL CHECK (lease_ms > 0),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    draining boolean NOT NULL DEFAULT false
);

-- One row per execution that a process has held: `worker` owns it while
-- that worker's heartbeat is live (NULL: handed back). `epoch` is the
-- fencing token: it grows by one at every claim and never goes back (a
-- release keeps the row); an append carries the epoch its process claimed
-- with and is refused when the row says otherwise. The row of an execution
-- that ended is deleted. `execution` is an execution id (16 bytes, as in
-- `executions.id`), not a foreign key: an execution's lease is taken by its
-- first append, which may carry no index row (an append of the indexes only).
CREATE TABLE leases (
    execution bytea PRIMARY KEY CHECK (length(execution) = 16),
    worker text COLLATE "C",
    epoch bigint NOT NULL CHECK (epoch >= 1),
    since timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- A branch or sub-workflow: claims pass it by; whoever claims its
    -- parent claims it with it (its parent's parallel actor finds it).
    child boolean NOT NULL DEFAULT false
);
CREATE INDEX leases_by_worker ON leases (worker) WHERE worker IS NOT NULL;

-- A claim looks up the timers of each candidate execution.
CREATE INDEX timers_by_execution ON timers (execution, at_ms);

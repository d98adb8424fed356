-- Schema version 1: the journal's tables. Applied once, inside the
-- migration transaction that holds the schema's advisory lock (schema.rs).
-- Ids are the 16 bytes of an ExecutionId (ULID, big-endian: bytea order is
-- time order). Times are unix milliseconds. Every `record`/`frame`/`ir`
-- column holds the bytes the sled backend stores (version byte first), so
-- decoding and damage reporting are shared; the other columns are copies
-- for SQL to select and sort on. Text that is sorted is COLLATE "C" so it
-- sorts by bytes, as sled's keys do, whatever the database's locale.

-- The execution index: one row per execution, replaced by each append that
-- carries a new row. `key` is the idempotency key (one execution per key).
CREATE TABLE executions (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    workflow_id text NOT NULL,
    workflow_version text NOT NULL,
    workflow_hash text NOT NULL,
    status text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    key text COLLATE "C" UNIQUE,
    record bytea NOT NULL
);
CREATE INDEX executions_by_status ON executions (status, updated_ms);

-- Every execution's history, append-only: one row per append, keyed by the
-- sequence number of its first record; `frame` is `encode_frame` of the
-- append's events. A second append at the same position is refused by the
-- primary key, never overwritten.
CREATE TABLE events (
    execution bytea NOT NULL,
    first_seq bigint NOT NULL CHECK (first_seq >= 1),
    last_seq bigint NOT NULL CHECK (last_seq >= first_seq),
    at_ms bigint NOT NULL,
    frame bytea NOT NULL,
    PRIMARY KEY (execution, first_seq)
);

-- Workflow IR by content hash, written once.
CREATE TABLE workflows (
    hash text COLLATE "C" PRIMARY KEY,
    ir bytea NOT NULL
);

-- Registered workflows by id and version (a second registration replaces the first).
CREATE TABLE registrations (
    workflow_id text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    hash text NOT NULL,
    registered_ms bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- The timer index: which execution has a deadline when.
CREATE TABLE timers (
    at_ms bigint NOT NULL,
    execution bytea NOT NULL,
    PRIMARY KEY (at_ms, execution)
);

-- The wait index: which executions wait for events with a key.
CREATE TABLE waits (
    event_key text COLLATE "C" NOT NULL,
    execution bytea NOT NULL,
    PRIMARY KEY (event_key, execution)
);

-- Kept events: published while no execution waited for their key, kept
-- until `until_ms`. `id` is unique and sorts by the time it was kept.
CREATE TABLE kept_events (
    event_key text COLLATE "C" NOT NULL,
    id bytea NOT NULL,
    until_ms bigint NOT NULL,
    published_ms bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (event_key, id)
);
CREATE INDEX kept_events_by_expiry ON kept_events (until_ms, id, event_key);

-- Sessions: one record per session, naming its executions in order.
CREATE TABLE sessions (
    id text COLLATE "C" PRIMARY KEY,
    workflow_id text NOT NULL,
    created_ms bigint NOT NULL,
    last_active_ms bigint NOT NULL,
    record bytea NOT NULL
);

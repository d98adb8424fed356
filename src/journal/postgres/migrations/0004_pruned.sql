-- Schema version 4: what is left of pruned executions (`jamjet prune`,
-- `jamjet dev --retention`). A prune deletes an ended execution's index
-- row, events, lease and timers in one transaction and writes its
-- tombstone here: `record` is the encoded `Tombstone` (its last index row,
-- when it was pruned, how many events it had), as the sled backend stores it.
CREATE TABLE pruned (
    id bytea PRIMARY KEY CHECK (length(id) = 16),
    pruned_ms bigint NOT NULL,
    record bytea NOT NULL
);

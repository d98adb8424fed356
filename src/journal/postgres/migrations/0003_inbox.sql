-- Schema version 3: executions' inboxes (see inbox.rs). A message sent to
-- an execution that another live process runs is one row here until its
-- sender has read the answer. `message` and `answer` are JSON (fields are
-- only ever appended). The owner answers a message it journals in the
-- transaction of that append (fenced like any append), so it is journaled
-- exactly once; a refusal is written alone. The sender deletes the row
-- once it has read the answer, or withdraws it (deletes it unanswered)
-- when it stops waiting; answered rows nobody read are deleted by claims
-- an hour after their answer.
CREATE TABLE inbox (
    id bigserial PRIMARY KEY,
    execution bytea NOT NULL CHECK (length(execution) = 16),
    sender text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    message jsonb NOT NULL,
    answered_at timestamptz,
    answer jsonb,
    CHECK ((answered_at IS NULL) = (answer IS NULL))
);
-- What the owner takes: the open rows of an execution, in order.
CREATE INDEX inbox_open ON inbox (execution, id) WHERE answered_at IS NULL;

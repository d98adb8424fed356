-- Schema version 5: the execution list's filters (`GET /executions?status=`
-- or `?workflow=`, the web UI) read one page of the rows with a status, or
-- of a workflow, in id order from a cursor, through these indexes: a filter
-- that matches nothing reads nothing.
CREATE INDEX executions_by_status_id ON executions (status, id);
CREATE INDEX executions_by_workflow_id ON executions (workflow_id, id);

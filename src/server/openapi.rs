//! `GET /openapi.json`: the OpenAPI 3.1 document of the REST API, built
//! from [`ROUTES`] (every route the REST router serves; a test walks the
//! table against the real server, and schemathesis checks every answer of
//! the real server against it). `docs/api.md` is the prose version.
//!
//! Every operation lists every status it can answer, each with its media
//! type and schema, errors included: 403 and 421 (the browser guard,
//! [`super::origin`]) on every route, 401 on the keyed ones, 413 and 415 on
//! every `POST`, and what each handler itself answers. There is no
//! `default` response: a status the document does not name is a bug.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;

/// One documented route.
pub struct Route {
    pub method: &'static str,
    /// OpenAPI path template (`{id}`), as the router has it.
    pub path: &'static str,
    pub summary: &'static str,
    /// Whether it needs the API key (when keys are configured).
    pub keyed: bool,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str, keyed: bool) -> Route {
    Route { method, path, summary, keyed }
}

/// Every route of the REST API (A2A routes are documented by their cards).
pub const ROUTES: &[Route] = &[
    route("get", "/health", "Liveness and version", false),
    route("get", "/openapi.json", "This document", false),
    route("get", "/metrics", "Prometheus text exposition", true),
    route("post", "/workflows", "Register a workflow (YAML or IR JSON); ?replace=true", true),
    route("get", "/workflows", "List registered workflows", true),
    route("get", "/workflows/{id}", "One registration and its IR; ?version=", true),
    route("post", "/executions", "Start an execution (idempotent with idempotency_key)", true),
    route("get", "/executions", "List executions: ?status=&workflow=&key=&order=&limit=&cursor=&usage=", true),
    route("get", "/executions/{id}", "Status, state, error, usage, timings, waits", true),
    route("get", "/executions/{id}/events", "Journal records; ?after=SEQ", true),
    route("get", "/executions/{id}/timeline", "One row per node visit, with the input and each visit's seqs", true),
    route(
        "get",
        "/executions/{id}/events/stream",
        "Journal records as Server-Sent Events, live; Last-Event-ID or ?after=",
        true,
    ),
    route("post", "/executions/{id}/signal", "Deliver an event to a wait node", true),
    route("post", "/executions/{id}/approve", "Decide an approval", true),
    route("post", "/executions/{id}/cancel", "Cancel a running or waiting execution", true),
    route(
        "post",
        "/executions/{id}/fork",
        "Start a new execution from a node visit of this one (state patched by `set`)",
        true,
    ),
    route("get", "/executions/{id}/workflow", "The workflow IR the execution runs, and its hash", true),
    route(
        "get",
        "/executions/{id}/replay",
        "The journal folded again through this build's state machine: where they disagree",
        true,
    ),
    route("post", "/events", "Publish an event by key to every execution waiting for it; kept when none does", true),
    route("post", "/resume", "Rehydrate every running execution not live in this process yet", true),
    route(
        "post",
        "/prune",
        "Remove ended executions older than a span, in batches; never running or waiting ones",
        true,
    ),
    route("get", "/sessions", "List sessions that have not expired", true),
    route("get", "/sessions/{id}", "One session: its tasks, their messages and answers, the state it carries", true),
];

/// What an error status means, for its description.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => {
            "bad_request: malformed JSON, fields, query, id or Last-Event-ID / invalid_key: an empty, oversized or control-character idempotency key / invalid_event: an empty, oversized or NUL-holding event key, or a bad `keep` / invalid_session: an empty, oversized or control-character session id"
        }
        401 => "unauthorized: a missing or wrong API key",
        403 => {
            "forbidden_origin: a web page from another origin / forbidden: a read-only key or client certificate asking for more than GET, or a client certificate no `cert:` line names"
        }
        404 => "unknown_execution / unknown_workflow / unknown_session / not_found",
        409 => {
            "workflow_conflict / finished / not_waiting / key_conflict: the idempotency key started another submission / session_workflow / session_busy: the session's previous task waits for input or runs past the wait"
        }
        410 => "pruned: the execution ended and was pruned; details name its status, workflow_id, pruned_ms, events",
        413 => "body_too_large: over --body-limit",
        415 => "unsupported_media_type: a POST must be application/json (or YAML on /workflows)",
        421 => "forbidden_host: a Host that is not this server (DNS rebinding)",
        422 => {
            "invalid_workflow / not_allowed / invalid_input / limit_exceeded: the input is over max_state_bytes / fork_refused: the node never ran, no such visit, or the history does not fit the newest version"
        }
        _ => "internal: a journal or actor failure / damaged: the execution's records cannot be read",
    }
}

/// `$ref` to a component schema.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(s: Value) -> Value {
    json!({ "application/json": { "schema": s } })
}

/// Success responses: status, description, content.
type Successes = Vec<(u16, &'static str, Value)>;
/// A request body: whether it is required, and its content.
type RequestBody = Option<(bool, Value)>;

/// The success responses, request body and parameters of one route.
struct Op {
    ok: Successes,
    /// Error statuses of its handler (the guard's, the key's and a POST's are added).
    errors: &'static [u16],
    request: RequestBody,
    params: Vec<Value>,
}

fn query(name: &str, s: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": s })
}

fn id_param(execution: bool, session: bool) -> Value {
    let s = if execution {
        json!({ "type": "string", "pattern": "^exec_[0-7][0-9A-HJKMNP-TV-Z]{25}$", "description": "an execution id" })
    } else if session {
        json!({ "type": "string", "minLength": 1, "maxLength": 512, "description": "a session id (an A2A contextId)" })
    } else {
        json!({ "type": "string", "minLength": 1, "description": "a workflow id" })
    };
    json!({ "name": "id", "in": "path", "required": true, "schema": s })
}

fn op(r: &Route) -> Op {
    let execution = r.path.starts_with("/executions/{id}");
    let session = r.path.starts_with("/sessions/");
    let mut params = if r.path.contains("{id}") { vec![id_param(execution, session)] } else { Vec::new() };
    let (ok, errors, request): (Successes, &'static [u16], RequestBody) = match (r.method, r.path) {
        ("get", "/health") => (vec![(200, "alive", json_body(schema("Health")))], &[], None),
        ("get", "/openapi.json") => (vec![(200, "this document", json_body(json!({ "type": "object" })))], &[], None),
        ("get", "/metrics") => {
            let text = json!({ "application/openmetrics-text": { "schema": { "type": "string" } } });
            (vec![(200, "OpenMetrics text", text)], &[500], None)
        }
        ("post", "/workflows") => {
            params.push(query("replace", json!({ "type": "boolean" })));
            let body = json!({
                "application/yaml": { "schema": { "type": "string", "description": "workflow YAML" } },
                "application/json": { "schema": { "type": "object", "description": "a workflow IR" } },
            });
            let reg = json_body(schema("Registration"));
            (
                vec![(201, "registered", reg.clone()), (200, "already registered", reg)],
                &[400, 409, 422, 500],
                Some((true, body)),
            )
        }
        ("get", "/workflows") => {
            let list = json!({ "type": "object", "required": ["workflows"],
                    "properties": { "workflows": { "type": "array", "items": schema("Registration") } } });
            (vec![(200, "the registrations", json_body(list))], &[500], None)
        }
        ("get", "/workflows/{id}") => {
            params.push(query("version", json!({ "type": "string" })));
            let one = json!({ "type": "object", "required": ["registration", "workflow"],
                    "properties": { "registration": schema("Registration"), "workflow": { "type": "object" } } });
            (vec![(200, "the registration and its IR", json_body(one))], &[400, 404, 500], None)
        }
        ("post", "/executions") => {
            let body = json!({ "type": "object", "additionalProperties": false,
                    "description": "`workflow_id` (a registered workflow, `version` optional) or `workflow` (an IR, run as it is, not registered)",
                    "properties": { "workflow_id": { "type": "string" }, "version": { "type": "string" },
                        "workflow": { "type": "object", "description": "a workflow IR" },
                        "input": { "type": "object" }, "idempotency_key": { "type": "string" },
                        "session": { "type": "string", "description": "run as a task of this session" } } });
            let started = json_body(schema("Started"));
            (
                vec![(201, "started", started.clone()), (200, "the execution of this idempotency_key", started)],
                &[400, 404, 409, 422, 500],
                Some((true, json_body(body))),
            )
        }
        ("get", "/executions") => {
            params.push(query(
                "status",
                json!({ "type": "string",
                    "enum": ["running", "waiting", "completed", "failed", "cancelled"] }),
            ));
            params.push(query("workflow", json!({ "type": "string" })));
            params.push(query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })));
            params.push(query("cursor", json!({ "type": "string", "pattern": "^exec_[0-7][0-9A-HJKMNP-TV-Z]{25}$" })));
            params.push(query("order", json!({ "type": "string", "enum": ["asc", "desc"] })));
            params.push(query(
                "key",
                json!({ "type": "string", "description": "only the execution of this idempotency key" }),
            ));
            params.push(query("usage", json!({ "type": "boolean", "description": "add each row's tokens and cost" })));
            let damaged = json!({ "type": "object", "required": ["execution", "detail"], "properties": {
                    "execution": { "type": "string" }, "detail": { "type": "string" } } });
            let page = json!({ "type": "object", "required": ["executions", "next_cursor"], "properties": {
                    "executions": { "type": "array", "items": schema("Summary") },
                    "next_cursor": { "type": ["string", "null"] },
                    "damaged": { "type": "array", "items": damaged,
                        "description": "executions whose index row, records or workflow cannot be read (unfiltered lists only)" } } });
            (vec![(200, "a page, oldest first (`order=desc`: newest first)", json_body(page))], &[400, 500], None)
        }
        ("get", "/executions/{id}/timeline") => {
            let seqs = json!({ "type": "object", "required": ["started", "completed"], "properties": {
                    "started": { "type": ["integer", "null"] }, "completed": { "type": ["integer", "null"] } } });
            let visit = json!({ "type": "object",
                    "required": ["node", "visit", "status", "scheduled_ms", "attempts", "errors", "usage"],
                    "properties": { "node": { "type": "string" }, "visit": { "type": "integer" },
                        "status": { "type": "string" }, "scheduled_ms": { "type": "integer" },
                        "started_ms": { "type": ["integer", "null"] }, "finished_ms": { "type": ["integer", "null"] },
                        "duration_us": { "type": ["integer", "null"] }, "attempts": { "type": "integer" },
                        "patch": {}, "next": { "type": ["string", "null"] },
                        "errors": { "type": "array", "items": { "type": "string" } }, "usage": schema("Usage"),
                        "exchanges": { "type": "array" }, "calls": { "type": "array" }, "scores": { "type": "array" },
                        "failures": { "type": "array" }, "waits": { "type": "array" }, "branches": { "type": "array" },
                        "tool_approvals": { "type": "array" } } });
            let body = json!({ "type": "object",
                    "required": ["id", "input", "last_seq", "seqs", "nodes", "kept_signals", "session", "fork"],
                    "properties": { "id": { "type": "string" }, "input": {}, "last_seq": { "type": "integer" },
                        "seqs": { "type": "array", "items": seqs }, "nodes": { "type": "array", "items": visit },
                        "kept_signals": { "type": "array" }, "session": {}, "fork": {} } });
            (vec![(200, "the timeline", json_body(body))], &[400, 404, 410, 500], None)
        }
        ("get", "/executions/{id}") => {
            (vec![(200, "the execution", json_body(schema("Execution")))], &[400, 404, 410, 500], None)
        }
        ("get", "/executions/{id}/workflow") => {
            let one = json!({ "type": "object", "required": ["hash", "workflow"],
                    "properties": { "hash": { "type": "string" }, "workflow": { "type": "object" } } });
            (vec![(200, "the IR and its content hash", json_body(one))], &[400, 404, 410, 500], None)
        }
        ("get", "/sessions") => {
            let list = json!({ "type": "object", "required": ["sessions"],
                    "properties": { "sessions": { "type": "array", "items": schema("Session") } } });
            (vec![(200, "the sessions, by id", json_body(list))], &[500], None)
        }
        ("get", "/sessions/{id}") => {
            (vec![(200, "the session", json_body(schema("SessionDetail")))], &[400, 404, 500], None)
        }
        ("post", "/resume") => {
            let skipped = json!({ "type": "object", "required": ["id", "reason"],
                    "properties": { "id": { "type": "string" }, "reason": { "type": "string" } } });
            let answer = json!({ "type": "object", "required": ["resumed", "skipped"], "properties": {
                    "resumed": { "type": "array", "items": { "type": "string" } },
                    "skipped": { "type": "array", "items": skipped } } });
            let body = json!({ "type": "object", "additionalProperties": false, "properties": {} });
            (
                vec![(200, "what was resumed and skipped", json_body(answer))],
                &[400, 500],
                Some((false, json_body(body))),
            )
        }
        ("get", "/executions/{id}/events") => {
            params.push(query("after", json!({ "type": "integer", "minimum": 0 })));
            let list = json!({ "type": "object", "required": ["events"],
                    "properties": { "events": { "type": "array", "items": schema("Record") } } });
            (vec![(200, "the records after `after`", json_body(list))], &[400, 404, 410, 500], None)
        }
        ("get", "/executions/{id}/events/stream") => {
            params.push(query("after", json!({ "type": "integer", "minimum": 0 })));
            params.push(json!({ "name": "Last-Event-ID", "in": "header", "required": false,
                    "schema": { "type": "string", "pattern": "^[0-9]{1,19}$" } }));
            // One schema per event (as schemathesis and OpenAPI 3.2 read it).
            let event = json!({ "type": "object", "required": ["event", "data"], "properties": {
                    "id": { "type": "string", "pattern": "^[0-9]+$", "description": "the record's seq" },
                    "event": { "type": "string", "description": "the event's name, or `end`" },
                    "data": { "type": "string", "contentMediaType": "application/json",
                        "description": "the Record as JSON; for `end`, {\"status\": ...}" } } });
            let sse = json!({ "text/event-stream": { "schema": event } });
            (vec![(200, "one event per record, then `end`", sse)], &[400, 404, 410, 500], None)
        }
        ("post", "/executions/{id}/signal") => {
            let body = json!({ "type": "object", "required": ["key"], "additionalProperties": false,
                    "properties": { "key": { "type": "string" }, "payload": {} } });
            (
                vec![(202, "delivered (journaled)", json_body(schema("Signalled")))],
                &[400, 404, 409, 410, 422, 500],
                Some((true, json_body(body))),
            )
        }
        ("post", "/events") => {
            let body = json!({ "type": "object", "required": ["key"], "additionalProperties": false,
                    "properties": { "key": { "type": "string", "minLength": 1, "maxLength": 512 }, "payload": {},
                        "keep": { "type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)?$",
                            "description": "how long to keep it when nothing waits for it (default 24h, at most 30d; 0 keeps nothing)" } } });
            (
                vec![(202, "delivered or kept (journaled)", json_body(schema("Published")))],
                &[400, 500],
                Some((true, json_body(body))),
            )
        }
        ("post", "/executions/{id}/approve") => {
            let body = json!({ "type": "object", "required": ["approved"], "additionalProperties": false,
                    "properties": { "approved": { "type": "boolean" }, "by": { "type": "string" },
                        "comment": { "type": "string" }, "node": { "type": "string" },
                        "call": { "type": "string", "minLength": 1,
                            "description": "a tool call that waits for a decision (`research.2`), decided on its own" } } });
            let moved = json!({ "type": "object", "required": ["id", "node", "status"], "properties": {
                    "id": { "type": "string" }, "node": { "type": "string" }, "call": { "type": "string" },
                    "status": { "type": "string" } } });
            (
                vec![(200, "decided (journaled)", json_body(moved))],
                &[400, 404, 409, 410, 422, 500],
                Some((true, json_body(body))),
            )
        }
        ("post", "/executions/{id}/cancel") => {
            let body = json!({ "type": "object", "additionalProperties": false,
                    "properties": { "reason": { "type": "string" } } });
            (
                vec![(200, "cancelled", json_body(schema("Moved")))],
                &[400, 404, 409, 410, 500],
                Some((false, json_body(body))),
            )
        }
        ("get", "/executions/{id}/replay") => {
            let report = json!({ "type": "object",
                    "required": ["id", "workflow_id", "workflow_version", "records", "folded", "status", "divergences"],
                    "properties": { "id": { "type": "string" }, "workflow_id": { "type": "string" },
                        "workflow_version": { "type": "string" }, "records": { "type": "integer" },
                        "folded": { "type": "string" }, "status": { "type": "string" },
                        "divergences": { "type": "array", "items": { "type": "object", "required": ["seq", "message"],
                            "properties": { "seq": { "type": "integer" }, "message": { "type": "string" } } } } } });
            (vec![(200, "the replay's findings", json_body(report))], &[400, 404, 410, 500], None)
        }
        ("post", "/executions/{id}/fork") => {
            let body = json!({ "type": "object", "required": ["from"], "additionalProperties": false,
                    "properties": {
                        "from": { "type": "string", "description": "the node the fork goes on at" },
                        "visit": { "type": ["integer", "null"], "minimum": 0, "description": "which visit (the last when absent)" },
                        "set": { "type": "object", "description": "keys merged over the state at the fork, checked against the schema" },
                        "latest": { "type": "boolean", "description": "run on the newest registered version of the workflow" } } });
            (
                vec![(201, "forked: the new execution", json_body(schema("Started")))],
                &[400, 404, 410, 422, 500],
                Some((true, json_body(body))),
            )
        }
        ("post", "/prune") => {
            let body = json!({ "type": "object", "required": ["older_than"], "additionalProperties": false,
                    "properties": {
                        "older_than": { "type": "string", "description": "a span with its unit: 30d, 12h, 90m, 2w" },
                        "status": { "type": "array", "items": { "type": "string",
                            "enum": ["completed", "failed", "cancelled"] } },
                        "keep_last": { "type": ["integer", "null"], "minimum": 0,
                            "description": "keep the newest N ended executions of each workflow" },
                        "dry_run": { "type": "boolean" } } });
            let freed = json!({ "type": "object", "properties": { "executions": { "type": "integer" },
                    "events": { "type": "integer" }, "bytes": { "type": "integer" } } });
            let report = json!({ "type": "object",
                    "required": ["dry_run", "selected", "freed", "skipped_live", "batches", "ids"],
                    "properties": { "dry_run": { "type": "boolean" }, "selected": { "type": "integer" },
                        "freed": freed, "skipped_live": { "type": "integer" }, "batches": { "type": "integer" },
                        "ids": { "type": "array", "items": { "type": "string" } },
                        "archive": { "type": ["object", "null"], "description": "the sled store's archive, rewritten: bytes before and after",
                            "properties": { "before": { "type": "integer" }, "after": { "type": "integer" } } } } });
            (vec![(200, "what was removed", json_body(report))], &[400, 500], Some((true, json_body(body))))
        }
        _ => (vec![(200, "success", json_body(json!({})))], &[500], None),
    };
    Op { ok, errors, request, params }
}

fn operation(r: &Route) -> Value {
    let Op { ok, errors, request, params } = op(r);
    let mut responses = Map::new();
    for (status, description, content) in ok {
        responses.insert(status.to_string(), json!({ "description": description, "content": content }));
    }
    let mut statuses: Vec<u16> = errors.to_vec();
    statuses.extend([403, 421]);
    if r.keyed {
        statuses.push(401);
    }
    if r.method == "post" {
        statuses.extend([413, 415]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        responses.insert(
            status.to_string(),
            json!({ "description": error_description(status), "content": json_body(schema("Error")) }),
        );
    }
    let mut op = json!({
        "summary": r.summary,
        "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
        "responses": responses,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some((required, content)) = request {
        op["requestBody"] = json!({ "required": required, "content": content });
    }
    if !r.keyed {
        op["security"] = json!([]);
    }
    op
}

fn components() -> Value {
    let text = json!({ "type": "string" });
    let ms = json!({ "type": "integer", "minimum": 0 });
    json!({
        "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": text, "message": text, "details": {}
                } } }
            },
            "Health": { "type": "object", "required": ["status", "version"],
                "properties": { "status": { "const": "ok" }, "version": text } },
            "Registration": { "type": "object", "required": ["workflow_id", "version", "hash", "registered_ms"],
                "properties": { "workflow_id": text, "version": text, "hash": text, "registered_ms": ms } },
            "Started": { "type": "object", "required": ["id", "workflow_id", "version", "status"],
                "properties": { "id": text, "workflow_id": text, "version": text, "status": text } },
            "Moved": { "type": "object", "required": ["id", "status"],
                "properties": { "id": text, "status": text } },
            "Signalled": { "type": "object", "required": ["id", "status", "kept", "awaited"],
                "properties": { "id": text, "status": text,
                    "kept": { "type": "boolean",
                        "description": "nothing in the execution waited for the key: the event is kept until a wait for it is reached" },
                    "awaited": { "type": "array", "items": { "$ref": "#/components/schemas/Waiting" },
                        "description": "the events the execution and its children waited for when it came" } } },
            "Published": { "type": "object", "required": ["key", "delivered", "kept", "kept_until_ms"],
                "properties": { "key": text,
                    "delivered": { "type": "array", "items": text,
                        "description": "the executions that received it (each journaled SignalReceived)" },
                    "kept": { "type": "boolean",
                        "description": "none waited for the key: it is kept for the first execution that reaches such a wait" },
                    "kept_until_ms": { "type": ["integer", "null"], "description": "when a kept event expires" } } },
            "Summary": { "type": "object",
                "required": ["id", "workflow_id", "version", "status", "created_ms", "updated_ms"],
                "properties": { "id": text, "workflow_id": text, "version": text, "status": text,
                    "created_ms": ms, "updated_ms": ms, "workflow_hash": text, "key": { "type": ["string", "null"] },
                    "parent": { "type": ["string", "null"],
                        "description": "the execution that started it (a parallel branch, a sub-workflow); null for one started on its own" },
                    "usage": { "$ref": "#/components/schemas/Usage", "description": "with `usage=true`" } } },
            "Usage": { "type": "object", "required": ["input_tokens", "output_tokens", "cost_usd"],
                "properties": { "input_tokens": ms, "output_tokens": ms, "cost_usd": { "type": "number" } } },
            "Waiting": { "type": "object", "required": ["id", "node", "kind", "since_ms"], "properties": {
                "id": text, "workflow_id": text, "node": text, "kind": { "enum": ["event", "approval", "timer"] },
                "event": { "type": ["string", "null"] }, "prompt": { "type": ["string", "null"] },
                "call": { "type": "string",
                    "description": "a tool call that waits for a decision (kind approval): its id, what the approve endpoint's `call` names" },
                "since_ms": ms, "deadline_ms": { "type": ["integer", "null"] },
                "parent": { "type": ["string", "null"] } } },
            "Execution": { "type": "object",
                "required": ["id", "workflow_id", "version", "status", "state", "error", "usage",
                    "created_ms", "updated_ms", "waiting", "settled"],
                "properties": { "id": text, "workflow_id": text, "version": text, "status": text, "state": {},
                    "error": { "type": ["string", "null"] }, "usage": { "$ref": "#/components/schemas/Usage" },
                    "created_ms": ms, "updated_ms": ms,
                    "waiting": { "type": "array", "items": { "$ref": "#/components/schemas/Waiting" } },
                    "workflow_hash": text, "key": { "type": ["string", "null"] },
                    "settled": { "type": "boolean",
                        "description": "only the outside can move it and its unfinished children on" } } },
            "Session": { "type": "object",
                "required": ["id", "workflow_id", "created_ms", "last_active_ms", "expires_ms", "executions", "running"],
                "properties": { "id": text, "workflow_id": text, "created_ms": ms, "last_active_ms": ms,
                    "expires_ms": { "type": ["integer", "null"], "description": "null while a task runs" },
                    "executions": { "type": "array", "items": text },
                    "running": { "type": ["string", "null"] } } },
            "SessionDetail": { "type": "object",
                "required": ["id", "workflow_id", "created_ms", "last_active_ms", "expires_ms", "executions", "running",
                    "tasks", "state"],
                "properties": { "id": text, "workflow_id": text, "created_ms": ms, "last_active_ms": ms,
                    "expires_ms": { "type": ["integer", "null"] },
                    "executions": { "type": "array", "items": text },
                    "running": { "type": ["string", "null"] },
                    "tasks": { "type": "array", "items": { "type": "object",
                        "required": ["execution", "status", "message", "answer"], "properties": {
                            "execution": text, "status": text,
                            "message": { "type": ["string", "null"] }, "answer": { "type": ["string", "null"] } } } },
                    "state": { "type": "object", "description": "the session_state keys the next task starts with" } } },
            "Record": { "type": "object", "required": ["seq", "at_ms", "event"], "properties": {
                "seq": { "type": "integer", "minimum": 1 }, "at_ms": ms,
                "event": { "type": ["object", "string"], "description": "the event: {Name: {...}}, or \"Name\"" } } }
        }
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        paths.entry(r.path.to_string()).or_insert_with(|| json!({}))[r.method] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "jamjet dev REST API", "version": env!("CARGO_PKG_VERSION"), "description": "See docs/api.md." },
        "paths": paths,
        "security": [{ "bearer": [] }],
        "components": components(),
    })
}

pub async fn serve(State(_): State<AppState>) -> Json<Value> {
    Json(document())
}

"""Drive a running `jamjet dev` from Python over REST and Server-Sent Events.

Standard library only. Registers a workflow, starts an execution, follows
its events as they become durable, signals it when it waits, and prints the
final state. See docs/migrating-from-openai.md and docs/api.md.

    jamjet dev                                   # in one terminal (127.0.0.1:7700)
    python3 examples/python/drive_server.py      # in another (or pass the URL)
"""

import json
import os
import sys
import urllib.error
import urllib.request

BASE = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("JAMJET_SERVER", "http://127.0.0.1:7700")
KEY = os.environ.get("JAMJET_API_KEY")  # only needed off loopback

WORKFLOW = """
id: refund-desk
version: 0.1.0
state_schema: { order_id: str, decision: dict, note: str }
nodes:
  wait_for_agent:
    type: wait
    event: "refund:{{ state.order_id }}"
    timeout_ms: 600000
    output_key: decision
    next: note
  note:
    type: set
    values: { note: "refund {{ state.decision.amount }} for {{ state.order_id }}" }
"""


def call(method, path, body=None, content_type="application/json"):
    data = None
    headers = {}
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if KEY:
        headers["Authorization"] = f"Bearer {KEY}"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.load(res)
    except urllib.error.HTTPError as e:
        error = json.load(e)["error"]  # {"code", "message", "details"}
        sys.exit(f"{method} {path}: {e.code} {error['code']}: {error['message']}")


def events(execution_id):
    """Yield (event name, data) for each SSE record, until the stream's `end`."""
    headers = {"Accept": "text/event-stream"}
    if KEY:
        headers["Authorization"] = f"Bearer {KEY}"
    req = urllib.request.Request(f"{BASE}/executions/{execution_id}/events/stream", headers=headers)
    with urllib.request.urlopen(req, timeout=60) as stream:
        name, data = None, []
        for raw in stream:
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):  # keep-alive comment
                continue
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].strip())
            elif line == "" and data:  # a blank line ends one record
                yield name, json.loads("\n".join(data))
                if name == "end":
                    return
                name, data = None, []


def main():
    reg = call("POST", "/workflows", WORKFLOW, content_type="application/yaml")
    print(f"registered {reg['workflow_id']} {reg['version']}")

    started = call("POST", "/executions", {
        "workflow_id": "refund-desk",
        "input": {"order_id": "A-17"},
        "idempotency_key": "refund-A-17",  # the same key again attaches to the same execution
    })
    execution_id = started["id"]
    print(f"execution {execution_id} {started['status']}")

    for name, data in events(execution_id):
        print(f"  {data.get('seq', '-'):>3} {name}")
        if name == "Waiting" and call("GET", f"/executions/{execution_id}")["status"] == "waiting":
            call("POST", f"/executions/{execution_id}/signal",
                 {"key": "refund:A-17", "payload": {"amount": 59.9, "by": "ada"}})
            print("      signalled refund:A-17")
        if name == "end":
            print(f"end: {data['status']}")

    final = call("GET", f"/executions/{execution_id}")
    print(json.dumps(final["state"], sort_keys=True))
    sys.exit(0 if final["status"] == "completed" else 1)


if __name__ == "__main__":
    main()

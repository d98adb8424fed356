"""A durable workflow that parks twice (an approval, then a wait for a
payment), for the tests that move it on from a later process.

    python gate.py STORE WORKDIR run KEY
    python gate.py STORE WORKDIR approve|reject|signal EXECUTION_ID

Each step appends to a file named after it in WORKDIR. Prints the result
(id, status, what it waits for, state) as one JSON line."""

from __future__ import annotations

import json
import os
import sys

from pydantic import BaseModel

from jamjet import Workflow

store, work, action, arg = sys.argv[1:5]


def bump(name: str) -> None:
    with open(os.path.join(work, name), "a") as f:
        f.write("x")


class Shipment(BaseModel):
    order_id: str
    checked: bool = False
    packed: bool = False
    payment: dict = {}
    shipped: str = ""


wf = Workflow("gate", store=store, state=Shipment)


@wf.step
def check(s: Shipment) -> dict:
    bump("check")
    return {"checked": True}


@wf.step(human_approval="Pack order {{ state.order_id }}?")
def pack(s: Shipment) -> dict:
    bump("pack")
    return {"packed": True}


wf.wait("await_payment", event="payment:{{ state.order_id }}", output_key="payment")


@wf.step
def ship(s: Shipment) -> dict:
    bump("ship")
    return {"shipped": f"shipped after paying {s.payment['amount']}"}


if action == "run":
    r = wf.run_sync(Shipment(order_id="17"), key=arg)
elif action == "approve":
    r = wf.approve(arg, by="ops", comment="go")
elif action == "reject":
    r = wf.approve(arg, "rejected", by="ops")
elif action == "signal":
    r = wf.signal(arg, "payment:17", {"amount": 12})
else:
    raise SystemExit(f"unknown action {action}")
assert r is not None
print(
    json.dumps(
        {
            "id": r.execution_id,
            "status": r.status,
            "waiting": [w.__dict__ for w in r.waiting],
            "state": r.state.model_dump(),
        }
    )
)

"""Drive a running JamJet server from Python with jamjet.Client.

Offline: it starts `jamjet dev` itself (this package's own command) on
127.0.0.1 with an API key and a temporary data dir, then registers a
refund workflow that waits for a person's approval and for a payment,
submits an execution, follows its events live, approves it, signals the
payment, and prints the result.

    python examples/client.py

Against your own server instead: `jamjet dev` in a terminal, then
`jamjet.Client("http://127.0.0.1:7700")` (the key from JAMJET_API_KEY).
"""

from __future__ import annotations

import secrets
import threading

from jamjet import Client, ClientError
from jamjet.testing import DevServer

REFUND = """
workflow:
  id: refund
  version: 0.1.0
  state_schema: { customer: str, amount: float, decision: dict, payment: dict, status: str }
nodes:
  ask:
    type: approval
    prompt: "Refund {{ state.amount }} to {{ state.customer }}?"
    output_key: decision
    on_reject: refused
    next: await_refund
  await_refund:
    type: wait
    event: "refund:{{ state.customer }}"
    output_key: payment
    next: done
  done:
    type: set
    values: { status: "refunded {{ state.payment.amount }} (approved by {{ state.decision.by }})" }
  refused:
    type: set
    values: { status: "refused" }
"""


def main() -> None:
    key = secrets.token_urlsafe(24)
    with DevServer(api_keys=[key]) as server:
        client = Client(server.url, api_key=key)
        print(f"jamjet dev at {server.url}: {client.health()['status']}")

        reg = client.register(REFUND)
        print(f"registered {reg.workflow_id} {reg.version} ({reg.hash[:12]})")

        run = client.submit("refund", {"customer": "Ada", "amount": 30}, key="refund-ada-1")
        parked = client.wait(run.id)  # until only the outside can move it on
        print(f"{run.id} is {parked.status}: {parked.waiting[0].kind} `{parked.waiting[0].prompt}`")

        # Follow its journal live on another thread while we move it on.
        seen: list[str] = []
        follower = threading.Thread(target=lambda: seen.extend(e.type for e in client.events(run.id)))
        follower.start()

        client.approve(run.id, by="ops", comment="looks right")
        waiting = client.wait(run.id)
        print(f"approved; now waiting for the event `{waiting.waiting[0].event}`")
        client.signal(run.id, "refund:Ada", {"amount": 30})

        done = client.wait(run.id, until="finished")
        follower.join(60)
        print(f"{done.status}: {done.state['status']}")
        print(f"events: {' '.join(seen)}")
        print(f"executions on the server: {[(s.workflow_id, s.status) for s in client.list()]}")

        try:
            Client(server.url, api_key="wrong").get(run.id)
        except ClientError as e:
            print(f"a wrong key: {e.status} {e.code}")


if __name__ == "__main__":
    main()

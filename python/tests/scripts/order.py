"""A durable order workflow the durability tests run as a child process.

    python order.py STORE KEY WORKDIR [HOLD]

Each step, and each durable piece, appends to a file named after it in
WORKDIR (its count of side effects). With HOLD (a step name) that step,
after its pieces, writes WORKDIR/HOLD.held and waits until WORKDIR/release
exists (at most 60 s): where the test kills the process. Prints the run's
result as one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from pydantic import BaseModel

import jamjet
from jamjet import Workflow

store, key, work = sys.argv[1:4]
hold = sys.argv[4] if len(sys.argv) > 4 else None


def bump(name: str) -> None:
    with open(os.path.join(work, name), "a") as f:
        f.write("x")
        f.flush()
        os.fsync(f.fileno())


def held_here(step: str) -> bool:
    if hold != step:
        return False
    open(os.path.join(work, f"{step}.held"), "w").close()
    return True


def released() -> bool:
    return os.path.exists(os.path.join(work, "release"))


class Order(BaseModel):
    order_id: str
    fetched: str = ""
    priced: int = 0
    charged: str = ""
    receipt: str = ""


wf = Workflow("order", store=store)
wf.state(Order)


@wf.step
def fetch(s: Order) -> dict:
    bump("fetch")
    return {"fetched": f"order {s.order_id}"}


def base_price() -> int:
    bump("piece.base")
    return 40


@wf.step
async def price(s: Order) -> dict:
    bump("price")
    base = await jamjet.step_run("base", base_price)
    tax = await jamjet.step_run("tax", lambda: (bump("piece.tax"), 2)[1])
    if held_here("price"):
        deadline = time.monotonic() + 60
        while not released():
            if time.monotonic() > deadline:
                raise RuntimeError("price: never released")
            await asyncio.sleep(0.02)
    bump("price.done")
    return {"priced": base + tax}


@wf.step
def charge(s: Order) -> dict:
    bump("charge")
    card = jamjet.step_run_sync("card", lambda: (bump("piece.card"), f"card charged {s.priced}")[1])
    if held_here("charge"):
        deadline = time.monotonic() + 60
        while not released():
            if time.monotonic() > deadline:
                raise RuntimeError("charge: never released")
            time.sleep(0.02)
    bump("charge.done")
    return {"charged": card}


@wf.step
def receipt(s: Order) -> dict:
    bump("receipt")
    return {"receipt": f"{s.fetched}: {s.priced}, {s.charged}"}


r = wf.run_sync(Order(order_id="17"), key=key)
print(json.dumps({"id": r.execution_id, "status": r.status, "state": r.state.model_dump(), "steps": r.steps_executed}))

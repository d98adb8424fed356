"""Durable runs (``store=``) across real processes: kill -9 inside a step,
then the same script again with the same key; ``jamjet inspect`` on the
store; approvals and waits moved on in this process and in a later one;
a store another process holds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Workflow

SCRIPTS = Path(__file__).resolve().parent / "scripts"
ORDER = str(SCRIPTS / "order.py")
GATE = str(SCRIPTS / "gate.py")
# A child's whole run, and how long a test waits for a child to get somewhere.
RUN_TIMEOUT = 120
REACH_TIMEOUT = 60


def run_script(*args: str) -> dict:
    """Run a script to its end (bounded); its last stdout line, as JSON."""
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert p.returncode == 0, f"{args} exited {p.returncode}:\n{p.stderr}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def counts(work: Path) -> dict[str, int]:
    """Side effects per step (and piece): how many times each ran."""
    return {f.name: len(f.read_text()) for f in work.iterdir() if f.is_file() and not f.name.endswith(".held") and f.name != "release"}


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    """Wait until `path` exists (bounded), failing if `proc` ends first."""
    deadline = time.monotonic() + REACH_TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"the script ended ({proc.returncode}) before {path.name}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            pytest.fail(f"the script did not reach {path.name} within {REACH_TIMEOUT} s")
        time.sleep(0.02)


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("hold", ["price", "charge"])
def test_kill_9_inside_a_step_then_the_same_script_again_resumes_there(tmp_path: Path, hold: str) -> None:
    """`price` is an async step, `charge` a sync one; each runs durable
    pieces (jamjet.step_run / step_run_sync) before it blocks."""
    store, work = tmp_path / "store", tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, ORDER, str(store), "order-17", str(work), hold],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(work / f"{hold}.held", proc)
    finally:
        if proc.poll() is None:
            kill9(proc)
    before = counts(work)
    ran_before = {"fetch": 1, "price": 1, "piece.base": 1, "piece.tax": 1}
    if hold == "charge":
        ran_before |= {"price.done": 1, "charge": 1, "piece.card": 1}
    assert before == ran_before

    (work / "release").touch()
    resumed = run_script(ORDER, str(store), "order-17", str(work), hold)
    assert resumed["status"] == "completed"
    after = counts(work)
    # The held step ran again from its start (it never completed); the
    # completed steps and the pieces journaled before the kill did not.
    assert after == {
        "fetch": 1,
        "price": 2 if hold == "price" else 1,
        "piece.base": 1,
        "piece.tax": 1,
        "price.done": 1,
        "charge": 2 if hold == "charge" else 1,
        "piece.card": 1,
        "charge.done": 1,
        "receipt": 1,
    }

    # The same key once more: the same execution, finished; nothing runs.
    again = run_script(ORDER, str(store), "order-17", str(work), hold)
    assert again["id"] == resumed["id"] and again["state"] == resumed["state"]
    assert counts(work) == after

    # An uninterrupted run gives the same final state.
    clean_work = tmp_path / "clean"
    clean_work.mkdir()
    clean = run_script(ORDER, str(tmp_path / "clean-store"), "order-17", str(clean_work))
    assert clean["state"] == resumed["state"]
    assert clean["state"]["receipt"] == "order 17: 42, card charged 42"
    assert clean["steps"] == resumed["steps"] == 4

    # `jamjet inspect` (this package's command) shows the Python execution.
    shown = subprocess.run(
        [sys.executable, "-m", "jamjet.cli", "inspect", resumed["id"], "--data-dir", str(store)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert resumed["id"] in text and "order@0.1.0" in text
    assert re.search(r"^status\s+completed$", text, re.M), text
    for step in ("fetch", "price", "charge", "receipt"):
        assert re.search(rf"^{step}\s+completed\s", text, re.M), text
    assert "run `base`  40" in text and "run `tax`  2" in text and 'run `card`  "card charged 42"' in text


class Shipment(BaseModel):
    order_id: str
    packed: bool = False
    payment: dict = {}
    shipped: str = ""


def gated(store: str | None = None) -> tuple[Workflow, list[str]]:
    ran: list[str] = []
    wf = Workflow("gate-here", state=Shipment, store=store)

    @wf.step(human_approval="Pack order {{ state.order_id }}?")
    def pack(s: Shipment) -> dict:
        ran.append("pack")
        return {"packed": True}

    wf.wait("await_payment", event="payment:{{ state.order_id }}", output_key="payment")

    @wf.step
    def ship(s: Shipment) -> dict:
        ran.append("ship")
        return {"shipped": f"shipped after paying {s.payment['amount']}"}

    return wf, ran


def test_an_approval_parks_the_run_and_approve_moves_it_on(store: str) -> None:
    wf, ran = gated(store)
    r = wf.run_sync(Shipment(order_id="17"))
    assert r.status == "waiting" and not r.completed and ran == []
    (w,) = r.waiting
    assert (w.kind, w.node, w.prompt) == ("approval", "approve_pack", "Pack order 17?")

    paying = wf.approve(r.execution_id, True, by="ops", comment="fine")
    assert paying is not None and paying.status == "waiting" and ran == ["pack"]
    assert paying.state.packed
    assert [(w.kind, w.node, w.event) for w in paying.waiting] == [("event", "await_payment", "payment:17")]

    done = wf.signal(r.execution_id, "payment:17", {"amount": 12})
    assert done is not None and done.completed and ran == ["pack", "ship"]
    assert done.state.payment == {"amount": 12} and done.state.shipped == "shipped after paying 12"
    kinds = [next(iter(e["event"])) if isinstance(e["event"], dict) else e["event"] for e in done.events]
    assert "ApprovalDecided" in kinds and "SignalReceived" in kinds


def test_a_rejected_step_does_not_run() -> None:
    wf, ran = gated()
    r = wf.run_sync(Shipment(order_id="9"))
    out = wf.approve(r.execution_id, "rejected", node="pack")
    assert out is not None and out.completed and ran == [] and not out.state.packed
    with pytest.raises(jamjet.NotWaiting) as e:
        wf.approve(r.execution_id, True)
    assert e.value.execution_id == r.execution_id
    with pytest.raises(jamjet.ValidationError, match="approved` or `rejected"):
        wf.approve(r.execution_id, "maybe")


async def test_the_async_run_parks_too() -> None:
    wf, ran = gated()
    r = await wf.run(Shipment(order_id="5"))
    assert r.status == "waiting" and r.waiting[0].kind == "approval"
    wf.approve(r.execution_id)
    wf.signal(r.execution_id, "payment:5", {"amount": 1}, wait=False)
    done = wf.resume(r.execution_id)
    assert done.completed and ran == ["pack", "ship"]


def test_approved_and_signalled_from_later_processes(tmp_path: Path) -> None:
    store, work = str(tmp_path / "store"), tmp_path / "work"
    work.mkdir()
    parked = run_script(GATE, store, str(work), "run", "ship-17")
    assert parked["status"] == "waiting"
    assert [(w["kind"], w["prompt"]) for w in parked["waiting"]] == [("approval", "Pack order 17?")]
    assert counts(work) == {"check": 1}

    # The same key from another process: the same parked execution.
    again = run_script(GATE, store, str(work), "run", "ship-17")
    assert again["id"] == parked["id"] and again["status"] == "waiting"

    approved = run_script(GATE, store, str(work), "approve", parked["id"])
    assert approved["status"] == "waiting" and approved["state"]["packed"]
    assert [w["event"] for w in approved["waiting"]] == ["payment:17"]

    paid = run_script(GATE, store, str(work), "signal", parked["id"])
    assert paid["status"] == "completed"
    assert paid["state"]["shipped"] == "shipped after paying 12"
    assert counts(work) == {"check": 1, "pack": 1, "ship": 1}


def test_a_store_held_by_another_process_is_store_locked(tmp_path: Path) -> None:
    store = str(tmp_path / "held")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, jamjet; rt = jamjet.Runtime(sys.argv[1]); rt.executions(); print('ready', flush=True); "
            "sys.stdin.readline()",
            store,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read() if holder.stderr else ""

        class S(BaseModel):
            n: int = 0

        wf = Workflow("locked", store=store, state=S)

        @wf.step
        def one(s: S) -> S:
            return s

        with pytest.raises(jamjet.StoreLocked) as e:
            wf.run_sync(S())
        assert store in str(e.value) and "another jamjet process" in str(e.value)
        with pytest.raises(jamjet.StoreLocked):
            jamjet.Runtime(store).executions()
    finally:
        holder.communicate("\n", timeout=30)
    # Once the holder is gone, the store opens.
    assert wf.run_sync(S(n=1)).state.n == 1

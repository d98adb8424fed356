#!/usr/bin/env python3
"""Python steps on the embedded runtime: what a step costs, against LangGraph.

    python python/benches/steps.py [--rounds 3] [--json] [--no-langgraph] ...

Run it with the release native module (``maturin develop --release``); see
the ``performance`` section of python/README.md for the exact commands.

What it measures, every round (medians over the rounds at the end):

- **per-step overhead**, in memory, of a trivial Python step ``def s(state):
  return {"i": state.i + 1}`` (sync, and the same ``async def``): a
  10-step and a 1-step workflow run one execution at a time, alternating,
  ``--runs`` times each; the per-step cost is (median 10-step execution -
  median 1-step execution) / 9, which leaves out what an execution costs
  once (starting it, its report, reading its final state). The overhead is
  that minus calling the function directly (``fn(state)``, or ``await
  fn(state)`` in a running loop, timed over a loop of calls);
- **per-step latency against LangGraph**, in memory: the 10-step sync
  workflow's median execution / 10 (the fixed cost included, the same
  measure as LangGraph's), against ``bench/compare/langgraph_bench.py
  --workload linear10 --saver memory`` (the same 10 steps, InMemorySaver);
- **durable throughput**: ``--executions`` executions of the 10-step sync
  workflow on sled (a fresh data dir each round, after a warm-up of
  ``--warmup-executions``), ``--concurrency`` in flight (asyncio: ``await
  wf.run(...)`` under a semaphore), against ``langgraph_bench.py --workload
  throughput --saver sqlite`` (SqliteSaver, durability="sync", its faster
  thread-pool mode).

LangGraph runs in a fresh process per round (its own script, with the
interpreter ``--langgraph-python``, default: this one when it has
LangGraph, else target/py-bench or target/compare-venv); jamjet runs in
this process; the two sides alternate which goes first. Every count is
bounded and ``--max-seconds`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import jamjet
from jamjet import Workflow

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH_BENCH = ROOT / "bench" / "compare" / "langgraph_bench.py"
STEPS = 10


class State(BaseModel):
    i: int = 0


def sync_step(state: State) -> dict[str, int]:
    return {"i": state.i + 1}


async def async_step(state: State) -> dict[str, int]:
    return {"i": state.i + 1}


class Deadline:
    """The run's time budget: every measurement checks it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.remaining() <= 0:
            raise SystemExit(f"steps.py: the time budget of {self.seconds:.0f} s ran out during {what}")


def log(msg: str) -> None:
    print(f"[steps.py] {msg}", file=sys.stderr, flush=True)


def line(name: str, steps: int, fn: Callable[..., Any], store: str | None = None) -> Workflow:
    """A workflow of ``steps`` copies of ``fn``, one after the other."""
    wf = Workflow(name, store=store, state=State)
    for k in range(steps):
        wf.step(name=f"s{k}")(fn)
    return wf


# ----- jamjet -----


def direct_ns(fn: Callable[..., Any], calls: int) -> float:
    """Nanoseconds per direct call of ``fn`` (awaited in a running loop
    when it is a coroutine function)."""
    arg = State(i=0)
    if asyncio.iscoroutinefunction(fn):

        async def loop() -> int:
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                out = await fn(arg)
            t1 = time.perf_counter_ns()
            assert out == {"i": 1}
            return t1 - t0

        return asyncio.run(loop()) / calls
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        out = fn(arg)
    t1 = time.perf_counter_ns()
    assert out == {"i": 1}
    return (t1 - t0) / calls


def timed_run(wf: Workflow, expect: int) -> int:
    t0 = time.perf_counter_ns()
    r = wf.run_sync(State(i=0))
    t1 = time.perf_counter_ns()
    if r.state.i != expect:
        raise SystemExit(f"{wf.name}: the final state is {r.state!r}, not i == {expect}")
    return t1 - t0


def sequential(kind: str, wf10: Workflow, wf1: Workflow, fn: Callable[..., Any], args: argparse.Namespace, deadline: Deadline) -> dict[str, Any]:
    """One round of the per-step figures for ``kind`` (sync or async) steps."""
    for _ in range(args.warmup):
        deadline.check(f"{kind} warm-up")
        timed_run(wf10, STEPS)
        timed_run(wf1, 1)
    ten: list[int] = []
    one: list[int] = []
    for n in range(args.runs):
        deadline.check(f"{kind} run {n}")
        ten.append(timed_run(wf10, STEPS))
        one.append(timed_run(wf1, 1))
    med10 = statistics.median(ten) / 1000
    med1 = statistics.median(one) / 1000
    per_step = (med10 - med1) / (STEPS - 1)
    direct = direct_ns(fn, args.direct_calls) / 1000
    return {
        "execution10_us": round(med10, 2),
        "execution1_us": round(med1, 2),
        "per_step_us": round(per_step, 2),
        "direct_call_us": round(direct, 3),
        "overhead_us": round(per_step - direct, 2),
        "latency_per_step_us": round(med10 / STEPS, 2),
    }


def throughput(args: argparse.Namespace, deadline: Deadline) -> dict[str, Any]:
    """One round of durable throughput, in a fresh data dir."""
    tmp = tempfile.mkdtemp(prefix="jamjet_steps_bench_")
    try:
        wf = line("bench_durable10", STEPS, sync_step, store=os.path.join(tmp, ".jamjet"))

        async def round_(n: int) -> int:
            sem = asyncio.Semaphore(args.concurrency)

            async def one() -> None:
                async with sem:
                    r = await wf.run(State(i=0))
                if r.state.i != STEPS:
                    raise SystemExit(f"durable: the final state is {r.state!r}")

            t0 = time.perf_counter_ns()
            try:
                await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout=max(1.0, deadline.remaining()))
            except asyncio.TimeoutError:
                raise SystemExit("steps.py: a throughput round outlived the time budget (--max-seconds)") from None
            return time.perf_counter_ns() - t0

        async def main() -> int:
            if args.warmup_executions:
                await round_(args.warmup_executions)
            return await round_(args.executions)

        wall = asyncio.run(main()) / 1e9
        wf.runtime.close()
        return {"executions": args.executions, "wall_s": round(wall, 4), "executions_per_s": round(args.executions / wall, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----- LangGraph -----


def langgraph_python(args: argparse.Namespace) -> str | None:
    """The interpreter LangGraph runs with (None: --no-langgraph)."""
    if args.no_langgraph:
        return None
    if args.langgraph_python:
        return args.langgraph_python
    candidates = [sys.executable, str(ROOT / "target" / "py-bench" / "bin" / "python"), str(ROOT / "target" / "compare-venv" / "bin" / "python")]
    for py in candidates:
        if os.path.exists(py) and subprocess.run([py, "-c", "import langgraph.graph"], capture_output=True, timeout=120).returncode == 0:
            return py
    raise SystemExit(
        "steps.py: no interpreter here has LangGraph. Install it: "
        f"{sys.executable} -m pip install -r {ROOT / 'bench/compare/requirements.txt'} "
        "(or pass --langgraph-python PATH, or --no-langgraph)"
    )


def langgraph(py: str, extra: list[str], deadline: Deadline) -> dict[str, Any]:
    budget = max(5.0, deadline.remaining())
    cmd = [py, str(LANGGRAPH_BENCH), *extra, "--max-seconds", f"{budget:.0f}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget + 30)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"steps.py: LangGraph outlived the time budget: {' '.join(cmd)}") from None
    if done.returncode != 0:
        raise SystemExit(f"steps.py: LangGraph failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


# ----- the run -----


def median(rounds: list[dict[str, Any]], *path: str) -> float:
    vals = []
    for r in rounds:
        v: Any = r
        for p in path:
            v = v[p]
        vals.append(v)
    return statistics.median(vals)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3); figures are medians over them")
    ap.add_argument("--runs", type=int, default=200, help="measured executions of each workflow per round (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="unmeasured executions of each per round (default 20)")
    ap.add_argument("--direct-calls", type=int, default=100_000, help="direct calls timed per round (default 100000)")
    ap.add_argument("--executions", type=int, default=1000, help="durable executions per round (default 1000)")
    ap.add_argument("--warmup-executions", type=int, default=100, help="durable warm-up executions per round (default 100)")
    ap.add_argument("--concurrency", type=int, default=64, help="durable executions in flight (default 64)")
    ap.add_argument("--no-langgraph", action="store_true", help="measure jamjet only")
    ap.add_argument("--no-durable", action="store_true", help="leave out the durable throughput rows")
    ap.add_argument("--langgraph-python", default=None, help="the interpreter with LangGraph installed")
    ap.add_argument("--max-seconds", type=float, default=1200.0, help="the whole run's time budget (default 1200)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    for name in ("rounds", "runs", "direct_calls", "executions", "concurrency"):
        if not 1 <= getattr(args, name) <= 1_000_000:
            ap.error(f"--{name.replace('_', '-')} must be between 1 and 1000000")
    if not (0 <= args.warmup <= 100_000 and 0 <= args.warmup_executions <= 1_000_000):
        ap.error("--warmup and --warmup-executions must be between 0 and their caps")

    deadline = Deadline(args.max_seconds)
    debug = getattr(jamjet._native, "debug_build", None)
    if debug:
        log("warning: the native module is a debug build: its figures say nothing (maturin develop --release)")
    lg_py = langgraph_python(args)
    began = time.perf_counter()

    wfs = {
        "sync": (line("bench_sync10", STEPS, sync_step), line("bench_sync1", 1, sync_step), sync_step),
        "async": (line("bench_async10", STEPS, async_step), line("bench_async1", 1, async_step), async_step),
    }
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        got: dict[str, Any] = {}

        def jamjet_side() -> None:
            for kind, (wf10, wf1, fn) in wfs.items():
                got[kind] = sequential(kind, wf10, wf1, fn, args, deadline)
                log(f"round {r + 1}: {kind} steps: {got[kind]['per_step_us']} µs/step, overhead {got[kind]['overhead_us']} µs")
            if not args.no_durable:
                deadline.check("durable throughput")
                got["durable"] = throughput(args, deadline)
                log(f"round {r + 1}: durable: {got['durable']['executions_per_s']} executions/s")

        def langgraph_side() -> None:
            if lg_py is None:
                return
            lg = langgraph(lg_py, ["--workload", "linear10", "--saver", "memory", "--runs", str(args.runs), "--warmup", str(args.warmup)], deadline)
            got["langgraph_memory"] = {"per_step_us": lg["median_per_step_us"], "execution_us": lg["median_execution_us"]}
            log(f"round {r + 1}: LangGraph in memory: {lg['median_per_step_us']} µs/step")
            if not args.no_durable:
                lg = langgraph(
                    lg_py,
                    ["--workload", "throughput", "--saver", "sqlite", "--runs", "1", "--executions", str(args.executions),
                     "--concurrency", str(args.concurrency), "--warmup", str(args.warmup_executions)],
                    deadline,
                )
                got["langgraph_durable"] = {"executions_per_s": lg["median_executions_per_s"], "mode": lg["mode"], "durability": lg["durability"]}
                log(f"round {r + 1}: LangGraph durable: {lg['median_executions_per_s']} executions/s")

        sides = [jamjet_side, langgraph_side] if r % 2 == 0 else [langgraph_side, jamjet_side]
        for side in sides:
            side()
        rounds.append(got)

    out: dict[str, Any] = {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jamjet_native": jamjet._native.__file__,
        "native_build": {True: "debug", False: "release", None: "unknown"}[debug],
        "args": vars(args),
        "rounds": rounds,
    }
    med: dict[str, Any] = {}
    for kind in wfs:
        med[kind] = {k: round(median(rounds, kind, k), 3) for k in rounds[0][kind]}
    if not args.no_durable:
        med["durable_executions_per_s"] = round(median(rounds, "durable", "executions_per_s"), 1)
    if lg_py is not None:
        med["langgraph_memory_per_step_us"] = round(median(rounds, "langgraph_memory", "per_step_us"), 2)
        med["latency_ratio"] = round(med["langgraph_memory_per_step_us"] / med["sync"]["latency_per_step_us"], 2)
        if not args.no_durable:
            med["langgraph_durable_executions_per_s"] = round(median(rounds, "langgraph_durable", "executions_per_s"), 1)
            med["throughput_ratio"] = round(med["durable_executions_per_s"] / med["langgraph_durable_executions_per_s"], 2)
    out["median"] = med
    targets = {
        "sync_overhead_le_30us": med["sync"]["overhead_us"] <= 30,
        "async_overhead_le_30us": med["async"]["overhead_us"] <= 30,
    }
    if "latency_ratio" in med:
        targets["latency_10x_langgraph"] = med["latency_ratio"] >= 10
    if "throughput_ratio" in med:
        targets["durable_throughput_10x_langgraph"] = med["throughput_ratio"] >= 10
    out["targets_met"] = targets
    out["wall_seconds"] = round(time.perf_counter() - began, 1)

    if args.json:
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(
        f"Python steps on jamjet ({out['native_build']} build, Python {out['python']}, {out['cpu_count']} cores), "
        f"{args.rounds} round(s), medians; {out['wall_seconds']} s"
    )
    print(f"{'':34} {'sync':>10} {'async':>10}")
    for key, label in [
        ("execution10_us", "10-step execution (µs)"),
        ("execution1_us", "1-step execution (µs)"),
        ("per_step_us", "per step: (10 - 1) / 9 (µs)"),
        ("direct_call_us", "calling the function (µs)"),
        ("overhead_us", "overhead per step (µs)"),
        ("latency_per_step_us", "10-step execution / 10 (µs)"),
    ]:
        print(f"{label:34} {med['sync'][key]:>10} {med['async'][key]:>10}")
    if "latency_ratio" in med:
        print(
            f"in memory, per step (execution / 10): jamjet {med['sync']['latency_per_step_us']} µs, "
            f"LangGraph {med['langgraph_memory_per_step_us']} µs: {med['latency_ratio']}x lower"
        )
    if not args.no_durable:
        lg = f", LangGraph (SqliteSaver) {med['langgraph_durable_executions_per_s']}: {med['throughput_ratio']}x" if "throughput_ratio" in med else ""
        print(f"durable, {args.executions} executions at concurrency {args.concurrency}: jamjet (sled) {med['durable_executions_per_s']} executions/s{lg}")
    for name, ok in targets.items():
        print(f"target {name}: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

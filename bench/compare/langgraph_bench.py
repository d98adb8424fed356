#!/usr/bin/env python3
"""LangGraph side of the JamJet-rs vs LangGraph side-by-side benchmark.

Runs one workload against one LangGraph checkpointer and prints exactly ONE
JSON object on stdout (progress goes to stderr).  Only the standard library and
the packages pinned in requirements.txt (langgraph, langgraph-checkpoint-sqlite,
aiosqlite) are used.

Workloads (they mirror the Rust side):

  linear10    StateGraph {"i": int}, START -> s0 -> ... -> s9 -> END, each node
              returns {"i": s["i"] + 1}.  Sequential executions with
              graph.invoke, fresh thread_id each, timed with perf_counter_ns.
  throughput  the same graph, --executions executions with --concurrency in
              flight (asyncio + ainvoke + Semaphore, or a thread pool calling
              the sync invoke), wall clock from first start to last finish.
  fanout100   node `fan` fans out 100 `Send("branch", {"item": k})`, each
              branch returns {"out": [item]} into an operator.add list channel,
              then a join node `done`.  Sequential executions with invoke.

Savers:
  memory      langgraph.checkpoint.memory.InMemorySaver
  sqlite      langgraph.checkpoint.sqlite.SqliteSaver (sync paths and the
              `threads` throughput mode) or
              langgraph.checkpoint.sqlite.aio.AsyncSqliteSaver (the `asyncio`
              throughput mode), on a fresh database file.

Durability: LangGraph's own `durability` argument of invoke/ainvoke.  Default
"sync" for sqlite (a step's checkpoint is committed before the next step
starts, the same guarantee the Rust side gives) and LangGraph's default
("async") for memory.

Throughput concurrency mode default (measured 2026-11-21 on the 2-core
benchmark box, CPython 3.11.7, langgraph 1.2.22, langgraph-checkpoint-sqlite
3.1.2, 1000 executions x 64 in flight, median of 3 rounds, two runs each in
alternating order; see README.md):
  memory (durability async):
      asyncio (ainvoke + Semaphore)           198.3 / 184.3 exec/s
      threads (64 x sync invoke)              109.5 / 109.0 exec/s
      -> default asyncio (~1.75x faster)
  sqlite (durability sync):
      asyncio (AsyncSqliteSaver/aiosqlite)     46.2 /  45.1 exec/s
      threads (SqliteSaver, one connection)    69.2 /  68.1 exec/s
      -> default threads (~1.5x faster)
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import json
import math
import operator
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from importlib import metadata
from typing import Annotated, Any

from typing_extensions import TypedDict

# LangSmith tracing is off unless the environment turns it on; keep it off so
# nothing leaves the machine and no tracing overhead is measured.
_TRACING_ENV = {k: os.environ.get(k) for k in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")}
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

try:  # only needed for the asyncio + sqlite mode
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
except ImportError:  # pragma: no cover - reported when actually needed
    aiosqlite = None
    AsyncSqliteSaver = None


# Measured default throughput mode per saver (see module docstring / README).
DEFAULT_THROUGHPUT_MODE = {"memory": "asyncio", "sqlite": "threads"}

LINEAR_STEPS = 10
FANOUT_BRANCHES = 100


def log(msg: str) -> None:
    print(f"[langgraph_bench] {msg}", file=sys.stderr, flush=True)


def pkg_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------


class LinearState(TypedDict):
    i: int


def step(s: LinearState) -> dict:
    return {"i": s["i"] + 1}


def build_linear10(checkpointer):
    builder = StateGraph(LinearState)
    names = [f"s{k}" for k in range(LINEAR_STEPS)]
    for name in names:
        builder.add_node(name, step)
    builder.add_edge(START, names[0])
    for a, b in zip(names, names[1:]):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=checkpointer)


class FanState(TypedDict):
    out: Annotated[list, operator.add]


class BranchState(TypedDict):
    item: int


def fan(s: FanState) -> dict:
    return {}


def fan_out(s: FanState) -> list[Send]:
    return [Send("branch", {"item": k}) for k in range(FANOUT_BRANCHES)]


def branch(s: BranchState) -> dict:
    return {"out": [s["item"]]}


def done(s: FanState) -> dict:
    return {}


def build_fanout100(checkpointer):
    builder = StateGraph(FanState)
    builder.add_node("fan", fan)
    builder.add_node("branch", branch)
    builder.add_node("done", done)
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", fan_out, ["branch"])
    builder.add_edge("branch", "done")
    builder.add_edge("done", END)
    return builder.compile(checkpointer=checkpointer)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def fresh_config() -> dict:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile (p in (0, 100]) of an ascending list."""
    if not sorted_vals:
        raise ValueError("no samples")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[rank - 1]


def check_linear(result: Any) -> None:
    if not isinstance(result, dict) or result.get("i") != LINEAR_STEPS:
        raise SystemExit(f"linear10: wrong result {result!r}, expected i == {LINEAR_STEPS}")


def check_fanout(result: Any) -> None:
    out = result.get("out") if isinstance(result, dict) else None
    if out is None or len(out) != FANOUT_BRANCHES or sorted(out) != list(range(FANOUT_BRANCHES)):
        raise SystemExit(f"fanout100: wrong result, len(out) = {None if out is None else len(out)}")


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.remaining() <= 0:
            raise SystemExit(f"time budget of {self.seconds:.0f}s exceeded during {what}")


# --------------------------------------------------------------------------
# Savers
# --------------------------------------------------------------------------


class DbFile:
    """A fresh SQLite database file under --db-dir (or a temp dir)."""

    def __init__(self, db_dir: str | None, workload: str, keep: bool):
        self.keep = keep
        if db_dir:
            os.makedirs(db_dir, exist_ok=True)
            self.tmpdir = None
            base = db_dir
        else:
            self.tmpdir = tempfile.mkdtemp(prefix="langgraph_bench_")
            base = self.tmpdir
        self.path = os.path.join(base, f"langgraph_{workload}_{os.getpid()}_{uuid.uuid4().hex[:8]}.sqlite")
        if os.path.exists(self.path):
            raise SystemExit(f"database file already exists: {self.path}")

    def cleanup(self) -> None:
        if self.keep:
            log(f"kept database {self.path}")
            return
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.remove(self.path + suffix)
                except FileNotFoundError:
                    pass


def sqlite_facts_sync(conn: sqlite3.Connection) -> dict:
    jm = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sy = conn.execute("PRAGMA synchronous").fetchone()[0]
    cps = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    wr = conn.execute("SELECT COUNT(*) FROM writes").fetchone()[0]
    return _facts(jm, sy, cps, wr)


async def sqlite_facts_async(conn) -> dict:
    async def one(q: str):
        async with conn.execute(q) as cur:
            return (await cur.fetchone())[0]

    return _facts(
        await one("PRAGMA journal_mode"),
        await one("PRAGMA synchronous"),
        await one("SELECT COUNT(*) FROM checkpoints"),
        await one("SELECT COUNT(*) FROM writes"),
    )


SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _facts(jm: str, sy: int, cps: int, wr: int) -> dict:
    return {
        "journal_mode": jm,
        "synchronous": SYNC_NAMES.get(sy, str(sy)),
        "synchronous_value": sy,
        # WAL + FULL/EXTRA: the WAL is fsynced at every commit.
        # WAL + NORMAL: fsync only at checkpoint (not every commit).
        "fsync_per_commit": (jm.lower() == "wal" and sy >= 2) or (jm.lower() != "wal" and sy >= 1),
        "checkpoints_written": cps,
        "writes_written": wr,
    }


def memory_facts(saver: InMemorySaver) -> dict:
    cps = 0
    for per_ns in saver.storage.values():
        for per_id in per_ns.values():
            cps += len(per_id)
    wr = sum(len(v) for v in saver.writes.values())
    return {"checkpoints_written": cps, "writes_written": wr}


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------


def open_sync_saver(saver_name: str, db):
    """The sync checkpointer `saver_name` names, and its SQLite connection (None in memory).
    Per SqliteSaver's docs, check_same_thread=False is fine: the saver serialises with a lock."""
    if saver_name == "memory":
        return InMemorySaver(), None
    conn = sqlite3.connect(db.path, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    return saver, conn


def run_sequential(graph, check, warmup: int, runs: int, durability: str, deadline: Deadline, what: str):
    inp = {"i": 0} if what == "linear10" else {"out": []}
    for n in range(warmup):
        deadline.check(f"{what} warmup")
        check(graph.invoke(inp, fresh_config(), durability=durability))
    samples_ns: list[int] = []
    for n in range(runs):
        deadline.check(f"{what} run {n}")
        config = fresh_config()
        t0 = time.perf_counter_ns()
        result = graph.invoke(inp, config, durability=durability)
        t1 = time.perf_counter_ns()
        check(result)
        samples_ns.append(t1 - t0)
    return samples_ns


def linear10_report(samples_ns: list[int]) -> dict:
    us = sorted(x / 1000.0 for x in samples_ns)
    med = statistics.median(us)
    return {
        "runs": len(us),
        "median_execution_us": round(med, 3),
        "p90_execution_us": round(percentile(us, 90), 3),
        "p99_execution_us": round(percentile(us, 99), 3),
        "mean_execution_us": round(statistics.fmean(us), 3),
        "min_execution_us": round(us[0], 3),
        "max_execution_us": round(us[-1], 3),
        "median_per_step_us": round(med / LINEAR_STEPS, 3),
        "p90_per_step_us": round(percentile(us, 90) / LINEAR_STEPS, 3),
        "p99_per_step_us": round(percentile(us, 99) / LINEAR_STEPS, 3),
        "steps_per_execution": LINEAR_STEPS,
        "samples_execution_us": [round(x / 1000.0, 3) for x in samples_ns],
    }


def fanout100_report(samples_ns: list[int]) -> dict:
    ms = sorted(x / 1e6 for x in samples_ns)
    return {
        "runs": len(ms),
        "branches": FANOUT_BRANCHES,
        "median_execution_ms": round(statistics.median(ms), 4),
        "p90_execution_ms": round(percentile(ms, 90), 4),
        "mean_execution_ms": round(statistics.fmean(ms), 4),
        "min_execution_ms": round(ms[0], 4),
        "max_execution_ms": round(ms[-1], 4),
        "samples_execution_ms": [round(x / 1e6, 4) for x in samples_ns],
    }


def round_result(n: int, wall_ns: int) -> dict:
    wall_s = wall_ns / 1e9
    return {
        "executions": n,
        "wall_s": round(wall_s, 6),
        "executions_per_s": round(n / wall_s, 3),
        "steps_per_s": round(n * LINEAR_STEPS / wall_s, 3),
    }


def throughput_threads(graph, executions: int, concurrency: int, durability: str, deadline: Deadline) -> int:
    """One round: `executions` sync invokes on a pool of `concurrency` threads."""

    def one(_: int) -> None:
        check_linear(graph.invoke({"i": 0}, fresh_config(), durability=durability))

    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        t0 = time.perf_counter_ns()
        futures = [pool.submit(one, k) for k in range(executions)]
        done_, not_done = concurrent.futures.wait(
            futures, timeout=max(1.0, deadline.remaining()), return_when=concurrent.futures.FIRST_EXCEPTION
        )
        t1 = time.perf_counter_ns()
        if not_done:
            for f in not_done:
                f.cancel()
        for f in done_:
            f.result()  # re-raise any failure loudly
        if not_done:
            raise SystemExit(f"throughput round did not finish within the time budget ({len(not_done)} pending)")
    return t1 - t0


async def throughput_asyncio(graph, executions: int, concurrency: int, durability: str, deadline: Deadline) -> int:
    """One round: `executions` ainvokes, at most `concurrency` in flight."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            check_linear(await graph.ainvoke({"i": 0}, fresh_config(), durability=durability))

    t0 = time.perf_counter_ns()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(executions))), timeout=max(1.0, deadline.remaining())
        )
    except asyncio.TimeoutError:
        raise SystemExit("throughput round did not finish within the time budget (--max-seconds)") from None
    t1 = time.perf_counter_ns()
    return t1 - t0


def throughput_report(rounds: list[dict]) -> dict:
    return {
        "rounds": rounds,
        "median_executions_per_s": round(statistics.median(r["executions_per_s"] for r in rounds), 3),
        "median_steps_per_s": round(statistics.median(r["steps_per_s"] for r in rounds), 3),
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", required=True, choices=["linear10", "throughput", "fanout100"])
    ap.add_argument("--saver", required=True, choices=["memory", "sqlite"])
    ap.add_argument(
        "--durability",
        choices=["sync", "async", "exit"],
        default=None,
        help='LangGraph durability mode (default: "sync" for sqlite, LangGraph\'s default "async" for memory)',
    )
    ap.add_argument("--runs", type=int, default=None, help="measured executions (linear10: 200, fanout100: 20) or rounds (throughput: 3)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured executions (linear10: 20, fanout100: 3, throughput: 100 in one round)")
    ap.add_argument("--executions", type=int, default=1000, help="throughput: executions per round")
    ap.add_argument("--concurrency", type=int, default=64, help="throughput: executions in flight")
    ap.add_argument("--mode", choices=["asyncio", "threads"], default=None, help="throughput concurrency mode (default: the measured faster one for the saver)")
    ap.add_argument("--db-dir", default=None, help="directory for the fresh sqlite file (default: a temp dir, removed after)")
    ap.add_argument("--keep-db", action="store_true", help="do not delete the sqlite file after the run")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="hard time budget for the whole run; exceeding it fails loudly")
    args = ap.parse_args()

    defaults = {
        "linear10": {"runs": 200, "warmup": 20},
        "fanout100": {"runs": 20, "warmup": 3},
        "throughput": {"runs": 3, "warmup": 100},
    }[args.workload]
    runs = args.runs if args.runs is not None else defaults["runs"]
    warmup = args.warmup if args.warmup is not None else defaults["warmup"]
    if runs < 1 or warmup < 0 or args.executions < 1 or args.concurrency < 1:
        ap.error("runs/executions/concurrency must be >= 1 and warmup >= 0")
    if runs > 1_000_000 or warmup > 1_000_000 or args.executions > 10_000_000:
        ap.error("counts are capped at 1e6 runs/warmup and 1e7 executions")

    durability_default = {"sqlite": "sync", "memory": "async"}[args.saver]
    durability = args.durability or durability_default
    mode = None
    if args.workload == "throughput":
        mode = args.mode or DEFAULT_THROUGHPUT_MODE[args.saver]

    deadline = Deadline(args.max_seconds)
    out: dict[str, Any] = {
        "framework": "langgraph",
        "workload": args.workload,
        "saver": args.saver,
        "durability": durability,
        "durability_source": "flag" if args.durability else "default",
        "durability_note": (
            "LangGraph invoke(durability=...): sync = checkpoint persisted before the next step starts; "
            "async = persisted while the next step runs; exit = only at the end. LangGraph's own default is async."
        ),
        "langgraph_version": pkg_version("langgraph"),
        "langgraph_checkpoint_version": pkg_version("langgraph-checkpoint"),
        "langgraph_checkpoint_sqlite_version": pkg_version("langgraph-checkpoint-sqlite"),
        "aiosqlite_version": pkg_version("aiosqlite"),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite_library_version": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "langsmith_tracing": "off (forced; environment had %s)" % _TRACING_ENV,
        "gc_enabled": gc.isenabled(),
    }

    db = DbFile(args.db_dir, args.workload, args.keep_db) if args.saver == "sqlite" else None
    if db:
        out["db_path"] = db.path
    t_start = time.perf_counter()
    try:
        if args.workload in ("linear10", "fanout100"):
            build, check = (build_linear10, check_linear) if args.workload == "linear10" else (build_fanout100, check_fanout)
            saver, conn = open_sync_saver(args.saver, db)
            try:
                graph = build(saver)
                log(f"{args.workload}/{args.saver}: warmup {warmup}, runs {runs}, durability {durability}")
                samples = run_sequential(graph, check, warmup, runs, durability, deadline, args.workload)
                out["saver_class"] = type(saver).__name__
                out["warmup"] = warmup
                out.update(linear10_report(samples) if args.workload == "linear10" else fanout100_report(samples))
                out["executions_total"] = warmup + runs
                facts = memory_facts(saver) if conn is None else sqlite_facts_sync(conn)
            finally:
                if conn is not None:
                    conn.close()
        else:  # throughput
            rounds: list[dict] = []
            log(
                f"throughput/{args.saver}: mode {mode}, warmup round {warmup}, {runs} rounds of "
                f"{args.executions} x {args.concurrency} in flight, durability {durability}"
            )
            if mode == "threads":
                saver, conn = open_sync_saver(args.saver, db)
                try:
                    graph = build_linear10(saver)
                    if warmup:
                        throughput_threads(graph, warmup, args.concurrency, durability, deadline)
                    for r in range(runs):
                        deadline.check(f"throughput round {r}")
                        rounds.append(round_result(args.executions, throughput_threads(graph, args.executions, args.concurrency, durability, deadline)))
                        log(f"round {r}: {rounds[-1]['executions_per_s']:.1f} exec/s")
                    facts = memory_facts(saver) if conn is None else sqlite_facts_sync(conn)
                finally:
                    if conn is not None:
                        conn.close()
                out["saver_class"] = type(saver).__name__
            else:

                async def amain() -> tuple[str, dict]:
                    if args.saver == "memory":
                        saver = InMemorySaver()
                        graph = build_linear10(saver)
                        await run_rounds(graph)
                        return type(saver).__name__, memory_facts(saver)
                    if AsyncSqliteSaver is None:
                        raise SystemExit("aiosqlite is not installed; pip install -r requirements.txt")
                    async with aiosqlite.connect(db.path) as aconn:
                        saver = AsyncSqliteSaver(aconn)
                        await saver.setup()
                        graph = build_linear10(saver)
                        await run_rounds(graph)
                        return type(saver).__name__, await sqlite_facts_async(aconn)

                async def run_rounds(graph) -> None:
                    if warmup:
                        await throughput_asyncio(graph, warmup, args.concurrency, durability, deadline)
                    for r in range(runs):
                        deadline.check(f"throughput round {r}")
                        wall = await throughput_asyncio(graph, args.executions, args.concurrency, durability, deadline)
                        rounds.append(round_result(args.executions, wall))
                        log(f"round {r}: {rounds[-1]['executions_per_s']:.1f} exec/s")

                out["saver_class"], facts = asyncio.run(amain())
            out["mode"] = mode
            out["mode_source"] = "flag" if args.mode else "default (measured faster on the benchmark box)"
            out["executions"] = args.executions
            out["concurrency"] = args.concurrency
            out["runs"] = runs
            out["warmup_executions"] = warmup
            out["steps_per_execution"] = LINEAR_STEPS
            out.update(throughput_report(rounds))
            out["executions_total"] = warmup + runs * args.executions
        out.update(facts)
        out["checkpoints_per_execution"] = round(out["checkpoints_written"] / out["executions_total"], 3)
        if args.saver == "memory":
            out["journal_mode"] = None
            out["synchronous"] = None
    finally:
        if db:
            db.cleanup()
    out["wall_seconds_total"] = round(time.perf_counter() - t_start, 3)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""JamJet-rs against LangGraph, side by side on this machine, in one run.

    python3 bench/compare/compare.py [--rounds 3] [--no-build] [--out bench/compare/results.md]
                                     [--baseline PATH/TO/OTHER/jamjet]

What it does, in order:

1. builds `target/release/jamjet` (cargo build --release), unless --no-build;
2. makes the virtualenv `target/compare-venv` and installs
   `bench/compare/requirements.txt` (langgraph, langgraph-checkpoint-sqlite,
   pinned) unless it is there already;
3. for each of --rounds rounds, runs every row below once on each side, in
   a fresh process each (jamjet first in odd rounds, LangGraph first in
   even ones, so neither always runs on a warmer machine);
4. prints one table of the medians over the rounds, with the ratio
   jamjet/LangGraph per row, checks the targets, and writes
   `bench/compare/results.md` (machine, versions, the exact command, every
   round's figure).

The rows (the same workloads on both sides; a "step" is a trivial
host-language function: `bench.step` in a `type: function` node for jamjet,
a Python function node for LangGraph, each its own checkpointed step):

- linear10 sequential: one execution of a 10-node line at a time (20
  warm-up, 200 measured); the median execution / 10 = per-step latency;
- 1,000 executions of it at concurrency 64 (after 100 warm-up): executions/s;
- fanout100: one execution of a 100-way fan-out and join at a time (3
  warm-up, 20 measured): the median execution.

With `--baseline BIN`, every round also runs jamjet's rows with another
jamjet binary (say a release build of the commit before a change), in
alternating order with this one, and a second table gives this build's
figure against the baseline's per row: how a change is held to "no slower
than before" (within 5 %), measured side by side in one run.

each in memory (jamjet's in-memory journal, LangGraph's InMemorySaver) and
durable (jamjet on sled, LangGraph's SqliteSaver with durability="sync": a
step's checkpoint is committed before the next step starts).

Only the standard library; every subprocess is bounded by a timeout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "bench" / "compare"
VENV = ROOT / "target" / "compare-venv"
JAMJET = ROOT / "target" / "release" / "jamjet"
STEP_TIMEOUT_S = 900

# (key, label, jamjet args, langgraph args, what is measured, unit, higher is better)
ROWS = [
    (
        "seq_memory",
        "linear10 sequential, per-step latency, in memory",
        ["--workload", "linear10", "-n", "200", "-c", "1", "--warmup", "20", "--memory"],
        ["--workload", "linear10", "--saver", "memory"],
        "per_step_us",
        "µs/step",
        False,
    ),
    (
        "seq_durable",
        "linear10 sequential, per-step latency, durable",
        ["--workload", "linear10", "-n", "200", "-c", "1", "--warmup", "20"],
        ["--workload", "linear10", "--saver", "sqlite"],
        "per_step_us",
        "µs/step",
        False,
    ),
    (
        "tput_memory",
        "1,000 × linear10 at concurrency 64, in memory",
        ["--workload", "linear10", "-n", "1000", "-c", "64", "--warmup", "100", "--memory"],
        ["--workload", "throughput", "--saver", "memory", "--runs", "1"],
        "executions_per_s",
        "executions/s",
        True,
    ),
    (
        "tput_durable",
        "1,000 × linear10 at concurrency 64, durable",
        ["--workload", "linear10", "-n", "1000", "-c", "64", "--warmup", "100"],
        ["--workload", "throughput", "--saver", "sqlite", "--runs", "1"],
        "executions_per_s",
        "executions/s",
        True,
    ),
    (
        "fan_memory",
        "fanout100 (100-way fan-out and join), in memory",
        ["--workload", "fanout100", "-n", "20", "-c", "1", "--warmup", "3", "--memory"],
        ["--workload", "fanout100", "--saver", "memory"],
        "execution_ms",
        "ms/execution",
        False,
    ),
    (
        "fan_durable",
        "fanout100 (100-way fan-out and join), durable",
        ["--workload", "fanout100", "-n", "20", "-c", "1", "--warmup", "3"],
        ["--workload", "fanout100", "--saver", "sqlite"],
        "execution_ms",
        "ms/execution",
        False,
    ),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[str], cwd: Path = ROOT) -> str:
    """Run `cmd`, bounded; its stdout. A failure stops everything, loudly."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        sys.exit(f"compare: `{shlex.join(cmd)}` took more than {STEP_TIMEOUT_S} s")
    if p.returncode != 0:
        sys.exit(f"compare: `{shlex.join(cmd)}` failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return p.stdout


def setup(build: bool) -> None:
    if build:
        log("building target/release/jamjet ...")
        run(["cargo", "build", "--release", "--bin", "jamjet"])
    if not JAMJET.exists():
        sys.exit(f"compare: {JAMJET} is missing (run without --no-build)")
    py = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    wanted = (HERE / "requirements.txt").read_text()
    if not py.exists() or not stamp.exists() or stamp.read_text() != wanted:
        log(f"making the virtualenv {VENV.relative_to(ROOT)} and installing requirements.txt ...")
        run([sys.executable, "-m", "venv", str(VENV)])
        run([str(py), "-m", "pip", "install", "--quiet", "-r", str(HERE / "requirements.txt")])
        stamp.write_text(wanted)


def jamjet(args: list[str], binary: Path = JAMJET) -> dict:
    return json.loads(run([str(binary), "bench", *args, "--json"]))


def langgraph(args: list[str]) -> dict:
    out = run([str(VENV / "bin" / "python"), str(HERE / "langgraph_bench.py"), *args], cwd=HERE)
    return json.loads(out)


# Each row's figure, from each side's JSON (latency rows: the run's median execution).
JAMJET_FIGURE = {
    "per_step_us": lambda r: r["execution_latency"]["p50_us"] / 10,
    "executions_per_s": lambda r: r["executions_per_second"],
    "execution_ms": lambda r: r["execution_latency"]["p50_us"] / 1000,
}
LANGGRAPH_FIGURE = {
    "per_step_us": lambda r: r["median_per_step_us"],
    "executions_per_s": lambda r: r["median_executions_per_s"],
    "execution_ms": lambda r: r["median_execution_ms"],
}


def sh(cmd: str) -> str:
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except subprocess.TimeoutExpired:
        return "?"


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "filesystem": sh(f"df -T {shlex.quote(str(ROOT / 'target'))} | awk 'NR==2 {{print $2}}'"),
        "loadavg": sh("cut -d' ' -f1-3 /proc/loadavg"),
        "rustc": sh("rustc --version"),
        "commit": sh(f"git -C {shlex.quote(str(ROOT))} rev-parse --short HEAD"),
        "python": platform.python_version(),
    }


def fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every row on each side (median over them)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/jamjet as it is")
    ap.add_argument("--out", default=str(HERE / "results.md"), help="where to write the results")
    ap.add_argument("--baseline", help="another jamjet binary to run beside this one, row by row")
    a = ap.parse_args()
    baseline = Path(a.baseline).resolve() if a.baseline else None
    if baseline is not None and not baseline.exists():
        sys.exit(f"compare: --baseline {baseline} does not exist")
    if not 1 <= a.rounds <= 20:
        sys.exit("compare: --rounds must be between 1 and 20")
    command = "python3 bench/compare/compare.py " + shlex.join(sys.argv[1:])
    setup(not a.no_build)
    before = machine()
    began = time.monotonic()
    figures: dict[str, dict[str, list[float]]] = {k: {"jamjet": [], "langgraph": [], "baseline": []} for k, *_ in ROWS}
    extras: dict[str, list[dict]] = {k: [] for k, *_ in ROWS}
    lg_extras: dict[str, list] = {k: [] for k, *_ in ROWS}
    lg_meta: dict = {}
    for rnd in range(a.rounds):
        for key, label, jargs, largs, metric, _unit, _higher in ROWS:
            log(f"round {rnd + 1}/{a.rounds}: {label}")
            sides = [("jamjet", jargs), ("langgraph", largs)]
            if baseline is not None:
                sides.insert(1, ("baseline", jargs))
            if rnd % 2 == 1:
                sides.reverse()
            for side, args in sides:
                if side == "baseline":
                    figures[key]["baseline"].append(JAMJET_FIGURE[metric](jamjet(args, baseline)))
                elif side == "jamjet":
                    r = jamjet(args)
                    figures[key]["jamjet"].append(JAMJET_FIGURE[metric](r))
                    extras[key].append(
                        {
                            "syncs_per_node": r["syncs_per_node"],
                            "cpu_cores_busy": r["cpu_cores_busy"],
                            "peak_rss_mib": r["peak_rss_bytes"] / 2**20,
                        }
                    )
                else:
                    r = langgraph(args)
                    figures[key]["langgraph"].append(LANGGRAPH_FIGURE[metric](r))
                    lg_meta = lg_meta or r
                    lg_extras[key].append(r.get("checkpoints_per_execution"))
    took = time.monotonic() - began

    rows = []
    for key, label, jargs, largs, metric, unit, higher in ROWS:
        j = statistics.median(figures[key]["jamjet"])
        lg = statistics.median(figures[key]["langgraph"])
        ratio = j / lg
        adv = ratio if higher else 1 / ratio
        rows.append((key, label, unit, j, lg, ratio, adv, higher, jargs, largs))

    seq_syncs = statistics.median(e["syncs_per_node"] for e in extras["seq_durable"])
    by = {r[0]: r for r in rows}
    targets = [
        ("jamjet ≥ 10× LangGraph's throughput, durable 1,000-execution row", by["tput_durable"][6], 10.0, "×"),
        ("jamjet ≥ 10× lower per-step latency, both in memory", by["seq_memory"][6], 10.0, "×"),
    ]

    # The table, for the terminal.
    head = f"{'row':<52} {'jamjet':>12} {'LangGraph':>12} {'jamjet/LG':>10}  jamjet is"
    print(head)
    print("-" * len(head) + "-" * 12)
    for key, label, unit, j, lg, ratio, adv, higher, *_ in rows:
        word = "more" if higher else "faster"
        print(f"{label + ' (' + unit + ')':<52} {fmt(j):>12} {fmt(lg):>12} {ratio:>10.3f}  {adv:.1f}× {word}")
    print()
    for name, got, want, unit in targets:
        print(f"{'MET ' if got >= want else 'MISS'} {name}: {got:.1f}{unit}")
    print(f"{'MET ' if seq_syncs <= 1.3 else 'MISS'} durable sequential row within 1.3 disk syncs per step: {seq_syncs:.2f}")
    against = []
    if baseline is not None:
        print()
        print(f"{'row':<52} {'this':>12} {'baseline':>12} {'change':>9}")
        for key, label, unit, j, _lg, _ratio, _adv, higher, *_ in rows:
            b = statistics.median(figures[key]["baseline"])
            # Positive: this build is better; negative: worse.
            change = (j / b - 1) if higher else (b / j - 1)
            against.append((label, unit, j, b, change))
            verdict = "ok " if change >= -0.05 else "SLOWER"
            print(f"{label + ' (' + unit + ')':<52} {fmt(j):>12} {fmt(b):>12} {change:>+8.1%}  {verdict}")

    # results.md
    m = before
    lines = [
        "# JamJet-rs vs LangGraph, side by side",
        "",
        f"Measured {datetime.date.today().isoformat()} in one run of `{command}`"
        f" ({a.rounds} rounds, {took / 60:.1f} min), jamjet at commit `{m['commit']}`.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']}, "
        f"`target/` on {m['filesystem']}; load average before the run {m['loadavg']}.",
        f"- jamjet: release build, {m['rustc']}; `target/release/jamjet bench ARGS --json`, a fresh process"
        " (and a fresh sled temp dir) per run.",
        f"- LangGraph {lg_meta.get('langgraph_version')}, langgraph-checkpoint {lg_meta.get('langgraph_checkpoint_version')}, "
        f"langgraph-checkpoint-sqlite {lg_meta.get('langgraph_checkpoint_sqlite_version')}, "
        f"aiosqlite {lg_meta.get('aiosqlite_version')}, CPython {lg_meta.get('python_version')}, "
        f"SQLite {lg_meta.get('sqlite_library_version')}; `bench/compare/langgraph_bench.py ARGS`, a fresh process per run.",
        "- A step is a trivial function on both sides: jamjet's `bench.step` in a `type: function` node (its own NodeActor"
        " and durable step), LangGraph's Python node `{\"i\": s[\"i\"] + 1}`.",
        "- Durable: jamjet on sled (group commit through its write-ahead log, `fdatasync`);"
        " LangGraph's SqliteSaver (WAL, `synchronous=FULL`: every commit syncs) with `durability=\"sync\"`,"
        " each step's checkpoint committed before the next starts. In memory: jamjet's in-memory journal;"
        " LangGraph's InMemorySaver (its default durability).",
        "- Throughput: LangGraph in the concurrency mode that is faster for each saver on this machine"
        " (asyncio for memory, a 64-thread pool for SQLite; see README.md). Figures: medians over the rounds;"
        " latency rows are each run's median execution (per-step = execution / 10).",
        "",
        "| row | unit | jamjet | LangGraph | jamjet / LangGraph | jamjet is |",
        "|---|---|---:|---:|---:|---|",
    ]
    for key, label, unit, j, lg, ratio, adv, higher, *_ in rows:
        word = "higher throughput" if higher else "lower latency"
        lines.append(f"| {label} | {unit} | {fmt(j)} | {fmt(lg)} | {ratio:.3f} | **{adv:.1f}×** {word} |")
    lines += ["", "## Targets", ""]
    for name, got, want, unit in targets:
        lines.append(f"- {'**met**' if got >= want else '**missed**'}: {name}: {got:.1f}{unit}.")
    lines.append(
        f"- {'**met**' if seq_syncs <= 1.3 else '**missed**'}: the durable sequential row within 1.3 disk syncs per step:"
        f" {seq_syncs:.2f} (one `fdatasync` for the start of each execution and one per step, none shared when one"
        " execution runs alone)."
    )
    if against:
        lines += [
            "",
            f"## Against the baseline `{baseline}`",
            "",
            "Run in the same rounds, in alternating order with this build (positive: this build is better).",
            "",
            "| row | unit | this build | baseline | change |",
            "|---|---|---:|---:|---:|",
        ]
        for label, unit, j, b, change in against:
            lines.append(f"| {label} | {unit} | {fmt(j)} | {fmt(b)} | {change:+.1%} |")
    lines += ["", "## Every round", "", "| row | side | " + " | ".join(f"round {i + 1}" for i in range(a.rounds)) + " |"]
    lines.append("|---|---|" + "---:|" * a.rounds)
    for key, label, unit, *_ in rows:
        for side in ("jamjet", "baseline", "langgraph") if baseline is not None else ("jamjet", "langgraph"):
            vals = " | ".join(fmt(v) for v in figures[key][side])
            lines.append(f"| {label} ({unit}) | {side} | {vals} |")
    lines += ["", "jamjet's own counters per round (syncs per node, cores busy, peak resident MiB):", ""]
    for key, label, *_ in rows:
        cells = "; ".join(
            f"{e['syncs_per_node']:.2f} syncs/node, {e['cpu_cores_busy']:.2f} cores, {e['peak_rss_mib']:.0f} MiB"
            for e in extras[key]
        )
        lines.append(f"- {label}: {cells}")
    lines += ["", "LangGraph's checkpoints written per execution (warm-up included), per round:", ""]
    for key, label, *_ in rows:
        lines.append(f"- {label}: " + ", ".join(f"{c:.1f}" if isinstance(c, (int, float)) else "?" for c in lg_extras[key]))
    lines += ["", "## The exact commands", "", "```sh"]
    for key, label, unit, j, lg, ratio, adv, higher, jargs, largs in rows:
        lines.append(f"target/release/jamjet bench {shlex.join(jargs)} --json")
        lines.append(f"(cd bench/compare && ../../target/compare-venv/bin/python langgraph_bench.py {shlex.join(largs)})")
    lines += ["```", ""]
    Path(a.out).write_text("\n".join(lines))
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()

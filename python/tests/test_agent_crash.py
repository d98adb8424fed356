"""kill -9 in the middle of an agent's tool call, inside a step of a
durable workflow: the same script run again with the same key resumes it.
Completed model calls are not sent again (counted by the loopback server
per Idempotency-Key), completed tool calls and steps do not run again
(their side effects counted in a file), and the final state equals an
uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jamjet.testing import ModelServer

SCRIPT = Path(__file__).parent / "scripts" / "agent_crash.py"
LIMIT = 120.0


def script_server(server: ModelServer) -> None:
    """The researcher's model: fetch a fast page, then a slow one, then answer."""
    server.reply_tools([("fetch_page", {"url": "https://a.example/fast"})], when=lambda r: r.turn == 1)
    server.reply_tools([("fetch_page", {"url": "https://b.example/slow"})], when=lambda r: r.turn == 2)


def start(store: Path, key: str, side: Path, release: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(store), key, str(side), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def finish(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=LIMIT)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def lines(side: Path) -> list[str]:
    return side.read_text().splitlines() if side.exists() else []


def test_kill_9_during_an_agents_tool_call_resumes_without_repeating_calls(
    model_server: ModelServer, tmp_path: Path
) -> None:
    script_server(model_server)
    store, side, release = tmp_path / "store", tmp_path / "side.txt", tmp_path / "release"

    # First run: killed while the slow tool call is in progress.
    proc = start(store, "crash-1", side, release)
    deadline = time.monotonic() + LIMIT
    while not any(line.startswith("start https://b.example/slow") for line in lines(side)):
        assert proc.poll() is None, f"the script ended early:\n{proc.communicate()}"
        assert time.monotonic() < deadline, f"the slow tool call never began: {lines(side)}"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=LIMIT)
    assert proc.returncode == -signal.SIGKILL
    before = lines(side)
    assert before == [
        "prepare",
        before[1],
        "done https://a.example/fast",
        before[3],
    ], before
    sent_before = model_server.keys()
    assert len(model_server.requests) == 2

    # Second run, same key: it resumes inside the step, inside the agent.
    release.touch()
    resumed = finish(start(store, "crash-1", side, release))
    after = lines(side)[len(before) :]
    # Only the interrupted tool call ran again (with the same key), then what followed it.
    assert after == [before[3], "done https://b.example/slow", "finish"], after
    assert before[3].startswith("start https://b.example/slow ")
    visit = f"{resumed['id']}/research/1"
    assert before[1] == f"start https://a.example/fast {visit}/call/2"
    assert before[3] == f"start https://b.example/slow {visit}/call/4"
    # Each model call was sent once: the two before the kill were not sent again.
    counts = model_server.keys()
    assert set(sent_before) == {visit, f"{visit}/call/3"}
    assert counts == {visit: 1, f"{visit}/call/3": 1, f"{visit}/call/5": 1}, counts

    # An uninterrupted run of the same script ends in the same state.
    fresh = finish(start(tmp_path / "store2", "fresh-1", tmp_path / "side2.txt", release))
    assert fresh["state"] == resumed["state"]
    assert resumed["state"]["research"] == "tool said: the page at https://b.example/slow"
    assert resumed["state"]["summary"].startswith("notes on journals; ")

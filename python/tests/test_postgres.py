"""A Workflow on the PostgreSQL store many processes share: runs, and a
second process's runtime sees and carries on what the first parked.

The server is ``JAMJET_TEST_PG`` (default the machines' own,
postgres://postgres@127.0.0.1:5432/test). With none answering, the test
says SKIPPED with the command that starts one; under ``CI=true`` (where
.ci/run starts it) it fails instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Workflow

BASE = os.environ.get("JAMJET_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def psql(sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["psql", BASE, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], capture_output=True, text=True, timeout=30)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema of its own, dropped at the end."""
    why = None
    if shutil.which("psql") is None:
        why = "no psql on PATH"
    else:
        probe = psql("SELECT 1")
        if probe.returncode != 0:
            why = f"no PostgreSQL at {BASE} ({probe.stderr.strip()})"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; start it with: {START}")
        print(f"SKIPPED: {why}; start it with: {START}", file=sys.stderr)
        pytest.skip(why)
    schema = f"jj_py_{secrets.token_hex(6)}"
    assert psql(f"CREATE SCHEMA {schema}").returncode == 0
    sep = "&" if "?" in BASE else "?"
    try:
        yield f"{BASE}{sep}options=-c%20search_path%3D{schema}"
    finally:
        psql(f"DROP SCHEMA {schema} CASCADE")


class Order(BaseModel):
    n: int = 0
    paid: dict[str, int] | None = None


def test_a_workflow_runs_on_postgres_and_another_runtime_carries_on_what_it_parked(pg_url: str) -> None:
    def build(**where: object) -> Workflow:
        wf = Workflow("pg_order", state=Order, **where)  # type: ignore[arg-type]

        @wf.step
        def double(state: Order) -> dict[str, int]:
            return {"n": state.n * 2}

        wf.wait("pay", event="paid", output_key="paid")

        @wf.step
        def done(state: Order) -> dict[str, int]:
            assert state.paid is not None
            return {"n": state.n + state.paid["amount"]}

        return wf

    wf = build(store=pg_url)
    assert wf.runtime.native.data_dir is not None and wf.runtime.native.data_dir.startswith("postgres://")
    parked = wf.run_sync(Order(n=21))
    assert parked.status == "waiting", parked
    # One runtime per URL in a process: a second handle on the store stands for another process.
    other = jamjet.Runtime(pg_url)
    try:
        end = build(runtime=other).signal(parked.execution_id, "paid", {"amount": 3})
        assert end is not None and end.status == "completed", end
        assert end.state.n == 45
    finally:
        other.close()

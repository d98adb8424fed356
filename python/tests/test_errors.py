"""Every bad input gets a clear exception of jamjet.errors naming what is
wrong and where: the state, the step, the file:line:column, the execution."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Workflow


class Counter(BaseModel):
    count: int = 0
    note: str = ""


def test_an_initial_state_that_does_not_validate_names_the_model_and_field() -> None:
    wf = Workflow("initial", state=Counter)

    @wf.step
    def bump(s: Counter) -> Counter:
        return s

    with pytest.raises(jamjet.ValidationError) as e:
        wf.run_sync({"count": "many"})
    text = str(e.value)
    assert "initial state" in text and "`Counter`" in text and "count" in text and "valid integer" in text

    class Other(BaseModel):
        x: int = 0

    with pytest.raises(jamjet.ValidationError, match="is a `Other`, not `Counter`"):
        wf.run_sync(Other())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_step_returning_a_state_that_does_not_validate_fails_naming_the_step(kind: str) -> None:
    wf = Workflow(f"bad-return-{kind}", state=Counter)
    calls: list[int] = []

    if kind == "sync":

        @wf.step(retry=3)
        def bump(s: Counter) -> dict:
            calls.append(1)
            return {"count": "many"}

    else:

        @wf.step(retry=3)
        async def bump(s: Counter) -> dict:
            calls.append(1)
            return {"count": "many"}

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Counter())
    text = str(e.value)
    assert e.value.node == "bump" and e.value.execution_id and e.value.execution_id in text
    assert "step `bump`" in text and "does not validate as `Counter`" in text
    assert "count" in text and "Input should be a valid integer" in text
    # A result that is wrong is not retried: the same code gives the same result.
    assert len(calls) == 1


def test_a_step_returning_something_else_says_what_it_returned() -> None:
    wf = Workflow("bad-type", state=Counter)

    @wf.step
    def bump(s: Counter) -> int:
        return 7

    with pytest.raises(jamjet.StepFailed, match=r"step `bump`: returned int 7: a step returns the state or a dict"):
        wf.run_sync(Counter())


def flaky_work(n: int) -> None:
    raise ValueError(f"flaky (attempt {n})")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_step_that_raises_is_retried_per_policy_then_step_failed_with_the_traceback(kind: str) -> None:
    wf = Workflow(f"flaky-{kind}", state=Counter)
    attempts: list[int] = []

    if kind == "sync":

        @wf.step(retry=3)
        def work(s: Counter) -> Counter:
            attempts.append(jamjet.current_step().attempt)
            flaky_work(len(attempts))
            return s

    else:

        @wf.step(retry={"max_attempts": 3, "delay_ms": 10})
        async def work(s: Counter) -> Counter:
            attempts.append(jamjet.current_step().attempt)
            flaky_work(len(attempts))
            return s

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Counter())
    assert attempts == [1, 2, 3]
    text = str(e.value)
    assert e.value.node == "work"
    assert "step `work` raised ValueError: flaky (attempt 3)" in text
    assert "Traceback (most recent call last)" in text and "in flaky_work" in text
    assert 'raise ValueError(f"flaky (attempt {n})")' in text


def test_retry_3_means_three_attempts_in_all() -> None:
    wf = Workflow("retry-3", state=Counter)
    attempts = 0

    @wf.step(retry=3)
    def work(s: Counter) -> Counter:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("try again")
        return s.model_copy(update={"count": attempts})

    assert wf.run_sync(Counter()).state.count == 3


def test_a_step_that_raises_without_retry_runs_once() -> None:
    wf = Workflow("no-retry", state=Counter)
    attempts = 0

    @wf.step
    def first(s: Counter) -> Counter:
        return s.model_copy(update={"note": "first ran"})

    @wf.step
    def work(s: Counter) -> Counter:
        nonlocal attempts
        attempts += 1
        raise KeyError("missing thing")

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Counter())
    assert attempts == 1 and e.value.node == "work"
    assert "step `work` raised KeyError: 'missing thing'" in str(e.value)
    # The journal tells the same story.
    events = wf.runtime.events(e.value.execution_id)
    assert any(isinstance(r["event"], dict) and "ExecutionFailed" in r["event"] for r in events)


def test_a_yaml_file_with_errors_gives_findings_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "workflow:\n"
        "  id: broken\n"
        "  version: 0.1.0\n"
        "  state_schema: { name: str }\n"
        "nodes:\n"
        "  greet:\n"
        "    type: set\n"
        '    values: { name: "x" }\n'
        "    next: juge\n"
        "  judge:\n"
        "    type: end\n"
    )
    with pytest.raises(jamjet.ValidationError) as e:
        jamjet._native.compile_file(str(path))
    findings = e.value.findings
    assert findings, "no findings"
    f = findings[0]
    assert f["file"].endswith("broken.yaml") and f["node"] == "greet"
    assert isinstance(f["line"], int) and isinstance(f["column"], int) and f["line"] == 9
    assert "juge" in f["message"] and "did you mean `judge`" in f["message"]
    assert f"broken.yaml:{f['line']}:{f['column']}" in str(e.value)

    with pytest.raises(jamjet.ValidationError, match="cannot read"):
        jamjet._native.compile_file(str(tmp_path / "absent.yaml"))


def test_the_same_key_with_another_input_is_a_key_conflict() -> None:
    wf = Workflow("keyed", state=Counter)

    @wf.step
    def bump(s: Counter) -> Counter:
        return s.model_copy(update={"count": s.count + 1})

    first = wf.run_sync(Counter(count=1), key="order-1")
    assert wf.run_sync(Counter(count=1), key="order-1").execution_id == first.execution_id
    with pytest.raises(jamjet.KeyConflict) as e:
        wf.run_sync(Counter(count=2), key="order-1")
    assert e.value.execution_id == first.execution_id and first.execution_id in str(e.value)
    with pytest.raises(jamjet.ValidationError):
        wf.run_sync(Counter(), key="")


def test_signalling_an_unknown_execution() -> None:
    wf = Workflow("signalled", state=Counter)

    @wf.step
    def bump(s: Counter) -> Counter:
        return s

    missing = "exec_01K00000000000000000000000"
    with pytest.raises(jamjet.UnknownExecution) as e:
        wf.signal(missing, "go", {"n": 1})
    assert e.value.execution_id == missing and missing in str(e.value)
    with pytest.raises(jamjet.UnknownExecution, match="`nope` is not an execution id"):
        wf.signal("nope", "go")
    with pytest.raises(jamjet.UnknownExecution):
        wf.approve(missing)
    # A finished execution waits for nothing.
    done = wf.run_sync(Counter())
    with pytest.raises(jamjet.NotWaiting) as n:
        wf.signal(done.execution_id, "go")
    assert n.value.execution_id == done.execution_id


def test_errors_keep_their_fields_across_pickling() -> None:
    e = jamjet.StepFailed("boom", execution_id="exec_1", node="work")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is jamjet.StepFailed and (back.execution_id, back.node, str(back)) == ("exec_1", "work", "boom")
    c = jamjet.ClientError("refused", status=401, code="unauthorized", details={"a": 1}, execution_id="exec_2")
    back_c = pickle.loads(pickle.dumps(c))
    assert (back_c.status, back_c.code, back_c.details, back_c.execution_id) == (401, "unauthorized", {"a": 1}, "exec_2")

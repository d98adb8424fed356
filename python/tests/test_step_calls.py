"""How a step is called: sync steps on caller threads (each call in a
fresh context, many at once), async steps through the step loop's inbox
(started at once, carried on by a task when they wait), a returned state
validated with the step's name in the error."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Workflow
from jamjet._steps import _Started


class Count(BaseModel):
    i: int = 0
    seen: list[str] = []


def test_each_sync_step_call_starts_from_a_fresh_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("left_behind", default="fresh")
    wf = Workflow("fresh-context", state=Count)

    def step(s: Count) -> dict:
        seen = var.get()
        var.set(f"set by call {s.i}")
        return {"i": s.i + 1, "seen": [*s.seen, seen]}

    for k in range(5):
        wf.step(name=f"s{k}")(step)
    for _ in range(3):  # the same caller threads again
        result = wf.run_sync(Count())
        assert result.state.seen == ["fresh"] * 5


@pytest.mark.parametrize("n", [8, 3, 12])
def test_sync_steps_of_many_executions_run_at_the_same_time(n: int) -> None:
    # Every step waits for all n: run one after another, they would break
    # the barrier (its timeout only bounds a failing run). The rounds find
    # the caller threads busy, asleep (after the pause), or too few.
    barrier = threading.Barrier(n, timeout=60)
    wf = Workflow(f"side-by-side-{n}", state=Count)

    @wf.step
    def meet(s: Count) -> dict:
        barrier.wait()
        return {"i": s.i + 1, "seen": [threading.current_thread().name]}

    async def main() -> list[jamjet.RunResult]:
        return await asyncio.gather(*(wf.run(Count()) for _ in range(n)))

    for _ in range(3):
        results = asyncio.run(main())
        assert [r.state.i for r in results] == [1] * n
        assert len({r.state.seen[0] for r in results}) == n
        assert threading.main_thread().name not in {r.state.seen[0] for r in results}
        time.sleep(0.05)  # the threads go to sleep


def test_an_async_step_that_waits_is_carried_on_by_the_step_loop() -> None:
    wf = Workflow("waits", state=Count)
    loops: list[asyncio.AbstractEventLoop] = []

    @wf.step
    async def first(s: Count) -> dict:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return {"i": s.i + 1, "seen": [jamjet.current_step().node_id]}

    @wf.step
    async def second(s: Count) -> dict:  # never waits: done when started
        return {"i": s.i + 10, "seen": [*s.seen, jamjet.current_step().node_id]}

    result = wf.run_sync(Count())
    assert result.state.i == 11
    assert result.state.seen == ["first", "second"]
    assert len(set(map(id, loops))) == 1


@pytest.mark.parametrize("waits", [False, True])
def test_an_async_step_that_raises_fails_with_its_message(waits: bool) -> None:
    wf = Workflow(f"raises-{waits}", state=Count)

    @wf.step
    async def broken(s: Count) -> Count:
        if waits:
            await asyncio.sleep(0.001)
        raise RuntimeError("the service said no")

    with pytest.raises(jamjet.StepFailed, match="(?s)step `broken` raised RuntimeError: the service said no") as info:
        wf.run_sync(Count())
    assert info.value.node == "broken"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_returned_state_that_does_not_validate_names_the_step(kind: str) -> None:
    wf = Workflow(f"bad-state-{kind}", state=Count)

    if kind == "sync":

        @wf.step
        def bad(s: Count) -> dict:
            return {"i": "not a number"}

    else:

        @wf.step
        async def bad(s: Count) -> dict:
            return {"i": "not a number"}

    with pytest.raises(jamjet.StepFailed, match="step `bad`: returned a state that does not validate as `Count`") as info:
        wf.run_sync(Count())
    assert "i\n" in str(info.value)


async def test_a_started_coroutine_carries_on_where_it_waited() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def body() -> str:
        seen.append("before")
        seen.append(await fut)
        await asyncio.sleep(0)
        return "done"

    coro = body()
    task = loop.create_task(_Started(coro, coro.send(None)))
    await asyncio.sleep(0)
    assert seen == ["before"] and not task.done()
    fut.set_result(5)
    assert await task == "done"
    assert seen == ["before", 5]


async def test_a_started_coroutine_is_cancelled_where_it_waits() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def body() -> None:
        try:
            await fut
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    coro = body()
    task = loop.create_task(_Started(coro, coro.send(None)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert fut.cancelled()

"""How a Python function answers the runtime's call: the handler each step
and tool is registered through, and the durable pieces inside a step."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from . import _native
from ._runtime import call_async, current_call, step_loop
from .errors import JamjetError

T = TypeVar("T")

# Raised by a `write` to say the result itself is wrong (not retried).
class BadResult(Exception):
    pass


def _failure(what: str, e: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return f"{what} raised {type(e).__name__}: {e}\n{tb}".rstrip()


def _class_of(e: BaseException) -> str:
    """The error class a step fails with: an agent's failure keeps its own
    (`budget_exceeded` is not retried, `connection` is per the policy);
    anything else is the function's (`function`, retried per the policy)."""
    cls = getattr(e, "error_class", None)
    return cls if isinstance(cls, str) and cls else "function"


class Handler:
    """Calls ``fn`` for the runtime: ``read`` turns the call's JSON input
    into its argument, ``write`` its result into JSON text. A sync ``fn``
    runs on the runtime's blocking-pool thread that called the handler; an
    async one on the step loop."""

    __slots__ = ("fn", "is_async", "what", "read", "write")

    def __init__(
        self,
        fn: Callable[..., Any],
        what: str,
        read: Callable[[str], Any],
        write: Callable[[Any, Any], str],
    ) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.what = what
        self.read = read
        self.write = write

    def __call__(self, call: _native.StepCall, reply: _native.Reply) -> None:
        try:
            arg = self.read(call.input)
        except Exception as e:
            reply.fail(f"{self.what}: its input does not read: {e}", "client_error")
            return
        if self.is_async:
            step_loop().call_soon_threadsafe(_start, self, call, reply, arg)
            return
        # A copy of the caller's context per call (the runtime's scope is in
        # it): the pool thread keeps its Python thread state between calls,
        # not what a step put in its context.
        contextvars.copy_context().run(self._run_sync, call, reply, arg)

    def _run_sync(self, call: _native.StepCall, reply: _native.Reply, arg: Any) -> None:
        current_call.set(call)
        try:
            out = self.fn(arg)
        except BaseException as e:  # the user's failure is the step's
            reply.fail(_failure(self.what, e), _class_of(e))
            return
        self.answer(reply, arg, out)

    def start(self, call: _native.StepCall, reply: _native.Reply) -> None:
        """Start an async ``fn`` for the runtime, on the step loop (what it
        calls for a call it queued in the loop's inbox)."""
        try:
            arg = self.read(call.input)
        except Exception as e:
            reply.fail(f"{self.what}: its input does not read: {e}", "client_error")
            return
        _start(self, call, reply, arg)

    def answer(self, reply: _native.Reply, arg: Any, out: Any) -> None:
        try:
            text = self.write(arg, out)
        except BadResult as e:
            reply.fail(f"{self.what}: {e}", "client_error")
            return
        except Exception as e:
            reply.fail(_failure(self.what, e), "client_error")
            return
        reply.ok(text)

    async def run_async(self, call: _native.StepCall, reply: _native.Reply, arg: Any) -> None:
        current_call.set(call)
        try:
            out = await self.fn(arg)
        except BaseException as e:
            reply.fail(_failure(self.what, e), _class_of(e))
            if not isinstance(e, Exception):
                raise
            return
        self.answer(reply, arg, out)


def _start(handler: Handler, call: _native.StepCall, reply: _native.Reply, arg: Any) -> None:
    """Run an async step on the running loop: at once, up to its first
    real wait (a step that never waits is done before this returns), then
    as a task."""
    loop = asyncio.get_running_loop()
    coro = handler.run_async(call, reply, arg)
    if sys.version_info >= (3, 12):
        asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        return
    if sys.version_info < (3, 11):  # no task context before 3.11: not eagerly
        loop.create_task(coro)
        return
    # What eager_start does from 3.12: the first send here, in the context
    # the task then carries on in.
    ctx = contextvars.copy_context()
    try:
        first = ctx.run(coro.send, None)
    except StopIteration:
        return
    loop.create_task(_Started(coro, first), context=ctx)  # type: ignore[call-arg]


_NOTHING: Any = object()


class _Started(Coroutine[Any, Any, None]):
    """A coroutine already run up to its first wait (``first``: what it
    yielded there), for a task to carry on: the task's first ``send`` gets
    ``first``, so it waits on that future as if it had sent it; every
    other ``send`` and ``throw`` goes to the coroutine."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self.coro = coro
        self.first = first

    def send(self, value: Any) -> Any:
        first = self.first
        if first is not _NOTHING:
            self.first = _NOTHING
            return first
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        self.first = _NOTHING
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Any:
        raise TypeError("a started step coroutine is carried on by a task, not awaited")


def to_json(value: Any) -> Any:
    """``value`` as JSON data (a Pydantic model dumped in JSON mode)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return TypeAdapter(type(value)).dump_python(value, mode="json") if value is not None else None


def _call_here() -> _native.StepCall | None:
    return current_call.get()


async def step_run(name: str, fn: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` as the durable piece ``name`` of the
    current step: its result is journaled, and when the step runs again (a
    retry, or after a crash) the journaled result is returned instead of
    calling ``fn`` again. The result must be JSON data or a Pydantic model;
    what is read back is its JSON form. Outside a step it simply runs."""
    call = _call_here()
    if call is None:
        out = fn(*args, **kwargs)
        return await out if inspect.isawaitable(out) else out  # type: ignore[return-value]
    kind, value = await call_async(lambda cb: call.piece(name, callback=cb))
    if kind == "done":
        return json.loads(value)
    try:
        out = fn(*args, **kwargs)
        if inspect.isawaitable(out):
            out = await out
        text = json.dumps(to_json(out))
    except BaseException as e:
        await call_async(lambda cb: value.finish(error=f"{type(e).__name__}: {e}", callback=cb))
        raise
    await call_async(lambda cb: value.finish(text, callback=cb))
    return out  # type: ignore[return-value]


def step_run_sync(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`step_run` for a sync step (it blocks its thread)."""
    call = _call_here()
    if call is None:
        return fn(*args, **kwargs)
    kind, value = call.piece(name)
    if kind == "done":
        return json.loads(value)
    try:
        out = fn(*args, **kwargs)
        text = json.dumps(to_json(out))
    except BaseException as e:
        value.finish(error=f"{type(e).__name__}: {e}")
        raise
    value.finish(text)
    return out


def current_step() -> _native.StepCall:
    """What the running step was called with: ``execution_id``, ``node_id``,
    ``attempt`` and ``idempotency_key`` (stable across retries and crashes:
    pass it to what you call)."""
    call = _call_here()
    if call is None:
        raise JamjetError("not inside a step")
    return call

"""The runtime handle, the loop async steps run on, and the bridge that
makes the native module's background operations awaitable."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import _native
from .errors import JamjetError

# What the step running in this context was called with (a `_native.StepCall`).
current_call: contextvars.ContextVar[Any] = contextvars.ContextVar("jamjet_current_call", default=None)


class StepScope:
    """Where the step running in this context runs: its runtime, and the
    numbers of the children it started (``jamjet.run_child``)."""

    __slots__ = ("runtime", "children")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.children = 0


# The scope of the step running in this context (set for each call a
# runtime makes; an async step's task inherits it).
current_scope: contextvars.ContextVar[StepScope | None] = contextvars.ContextVar("jamjet_step_scope", default=None)


class _Bound:
    """A handler as one runtime calls it: the call runs in that runtime's scope."""

    __slots__ = ("runtime", "handler")

    def __init__(self, runtime: Runtime, handler: Any) -> None:
        self.runtime = runtime
        self.handler = handler

    def __call__(self, call: Any, reply: Any) -> None:
        token = current_scope.set(StepScope(self.runtime))
        try:
            self.handler(call, reply)
        finally:
            current_scope.reset(token)

    @property
    def is_async(self) -> bool:
        return bool(getattr(self.handler, "is_async", False))

    def start(self, call: Any, reply: Any) -> None:
        """The handler's ``start`` (what the step loop calls for an async
        step handed over through its inbox), run in this runtime's scope."""
        token = current_scope.set(StepScope(self.runtime))
        try:
            self.handler.start(call, reply)
        finally:
            current_scope.reset(token)


_open: weakref.WeakSet[Runtime] = weakref.WeakSet()
_lock = threading.Lock()


class _StepLoop:
    """One asyncio loop on a thread of its own: where async steps and
    tools run (a step's coroutine never runs on a runtime thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._looking = False
        self._look_until = 0.0
        # Where the runtime hands async handlers' calls to this loop without
        # the GIL (Unix; elsewhere they come through call_soon_threadsafe).
        self.inbox: _native.Inbox | None
        try:
            self.inbox = _native.Inbox()
            self.loop.add_reader(self.inbox.fileno(), self._drain)
        except (NotImplementedError, OSError):
            self.inbox = None
        self.thread = threading.Thread(target=self._run, name="jamjet-steps", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _drain(self) -> None:
        assert self.inbox is not None
        for handler, call, reply in self.inbox.drain():
            try:
                handler.start(call, reply)
            except BaseException as e:  # the handler broke: the step fails, the loop goes on
                reply.fail(f"the Python handler raised: {type(e).__name__}: {e}", "internal")
        self._look_until = time.perf_counter() + _LOOK_FOR
        if not self._looking:
            self._looking = True
            self.inbox.look(True)
            self.loop.call_soon(self._look)

    def _look(self) -> None:
        # Keeps the loop from sleeping (its select polls) for a moment after
        # a call, looking for the next one: a workflow's next step usually
        # comes within it, and waking a sleeping thread on another CPU costs
        # tens of µs on a VM whose idle CPUs halt. With nothing else ready
        # on the loop, the look is the inbox's own (in Rust, without the
        # GIL: it sees a call within a µs or two); otherwise one look per
        # turn of the loop, so the other callbacks run in between.
        inbox = self.inbox
        assert inbox is not None
        if not inbox.pending():
            left = self._look_until - time.perf_counter()
            if left > 0:
                if self._others_ready():
                    _yield_cpu()  # to the thread that calls next, should it share this CPU
                elif inbox.wait(left):
                    self._drain()
                self.loop.call_soon(self._look)
                return
            inbox.look(False)
            if not inbox.pending():  # (a call queued meanwhile rang the bell)
                self._looking = False
                return
            inbox.look(True)
        self._drain()
        self.loop.call_soon(self._look)

    def _others_ready(self) -> bool:
        # Whether callbacks other than this look wait on the loop (asyncio's
        # own loops keep them in `_ready`; an unknown loop: assume some).
        ready = getattr(self.loop, "_ready", None)
        return ready is None or len(ready) > 0


# How long the step loop polls for the next call after one (seconds).
_LOOK_FOR = 100e-6
_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", lambda: None)

_step_loop: _StepLoop | None = None


def step_loop() -> asyncio.AbstractEventLoop:
    """The loop async steps run on (started on first use)."""
    global _step_loop
    if _step_loop is None:
        with _lock:
            if _step_loop is None:
                _step_loop = _StepLoop()
    return _step_loop.loop


def step_inbox() -> _native.Inbox | None:
    """The step loop's inbox (None where there is none): the runtime
    queues an async handler's calls there."""
    step_loop()
    assert _step_loop is not None
    return _step_loop.inbox


def _inbox_for(handler: Any) -> _native.Inbox | None:
    # An async handler (one with a `start(call, reply)` the step loop calls).
    inner = getattr(handler, "handler", handler)  # through a _Bound
    return step_inbox() if getattr(handler, "is_async", False) and hasattr(inner, "start") else None


def on_step_loop() -> bool:
    return _step_loop is not None and threading.current_thread() is _step_loop.thread


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


async def call_async(op: Callable[[Callable[[bool, Any], None]], Any]) -> Any:
    """Await a native operation started with a callback: ``op(callback)``."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def done(ok: bool, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(_settle, fut, ok, value)
        except RuntimeError:  # the caller's loop closed meanwhile
            pass

    op(done)
    return await fut


class Runtime:
    """A JamJet runtime in this process.

    ``Runtime()`` journals in memory (nothing survives the process);
    ``Runtime(data_dir=".jamjet")`` journals on sled in that directory, so
    an execution resumes after a crash where it stopped. One process holds
    a data dir at a time (:class:`jamjet.errors.StoreLocked` otherwise).
    Several workflows may share one runtime. It opens on first use and is
    closed at interpreter exit (the journal is flushed)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        self._native: _native.Runtime | None = None
        self._functions: dict[str, Any] = {}
        self._open_lock = threading.Lock()

    @property
    def native(self) -> _native.Runtime:
        """The native handle, opened on first use."""
        if self._native is None:
            with self._open_lock:
                if self._native is None:
                    rt = _native.Runtime(self.data_dir)
                    for name, (handler, description, parameters) in self._functions.items():
                        bound = _Bound(self, handler)
                        rt.add_function(name, bound, description, parameters, _inbox_for(bound))
                    self._native = rt
                    _open.add(self)
        if self._native.closed:
            raise JamjetError(f"runtime {self!r} is closed")
        return self._native

    def add_function(
        self, name: str, handler: Any, description: str | None = None, parameters: dict[str, Any] | None = None
    ) -> None:
        """Register a host function (a step or a tool) by name."""
        params = json.dumps(parameters) if parameters is not None else None
        self._functions[name] = (handler, description, params)
        if self._native is not None:
            bound = _Bound(self, handler)
            self._native.add_function(name, bound, description, params, _inbox_for(bound))

    def has_function(self, name: str) -> bool:
        """Whether a function ``name`` is registered here (through Python)."""
        return name in self._functions

    def serve(self, addr: str = "127.0.0.1:0", *, a2a: bool = True) -> str:
        """Serve this runtime over HTTP from this process, as ``jamjet dev``
        does: the REST API (``/workflows``, ``/executions``, ...) and every
        registered workflow as an A2A agent (``a2a=False``: only those
        marked ``a2a:``), and the local agents of the workflows registered
        before it starts (``/a2a/{workflow}.{agent}``). Steps that are Python
        functions run here. Loopback only (``127.0.0.1``; port 0 picks a
        free one); returns the base URL.
        Serving stops at :meth:`stop_serving` or :meth:`close`."""
        return self.native.serve(addr, a2a)

    @property
    def url(self) -> str | None:
        """The URL this runtime is served at, or ``None``."""
        return self._native.url if self._native is not None and not self._native.closed else None

    def stop_serving(self) -> None:
        """Stop serving (requests under way finish first)."""
        if self._native is not None:
            self._native.stop_serving()

    def close(self) -> None:
        """Stop the runtime; a durable store is flushed and released."""
        if self._native is not None:
            self._native.close()

    def resume_all(self) -> list[str]:
        """Resume every execution of the store that a stopped process left
        running; their workflows' functions must be registered first."""
        return list(self.native.resume_all())

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        """The store's executions (id, workflow, status, times, key)."""
        return json.loads(self.native.list(status))

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """An execution's journal: ``{seq, at_ms, event}`` records."""
        return json.loads(self.native.events(execution_id))

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"data_dir={self.data_dir!r}" if self.data_dir else "in memory"
        return f"jamjet.Runtime({where})"


_memory: Runtime | None = None


def memory_runtime() -> Runtime:
    """The process's shared in-memory runtime (workflows without a store)."""
    global _memory
    if _memory is None:
        with _lock:
            if _memory is None:
                _memory = Runtime()
    return _memory


_by_dir: dict[str, Runtime] = {}


def runtime_for(store: str | os.PathLike[str]) -> Runtime:
    """The process's runtime on data dir ``store`` (one per directory), or
    on the PostgreSQL store at a ``postgres://`` URL (one per URL)."""
    text = os.fspath(store)
    shared = isinstance(text, str) and text.startswith(("postgres://", "postgresql://"))
    path = text if shared else os.path.realpath(text)
    with _lock:
        rt = _by_dir.get(path)
        if rt is None or (rt._native is not None and rt._native.closed):
            rt = _by_dir[path] = Runtime(store)
        return rt


@atexit.register
def _close_all() -> None:
    for rt in list(_open):
        try:
            rt.close()
        except Exception:  # exiting: nothing to tell anyone
            pass

"""``jamjet._native``: the Rust runtime embedded in this Python process.

A thin layer under the pure-Python package: a runtime handle
(:class:`Runtime`), a compiled workflow (:class:`Workflow`), what a step is
called with (:class:`StepCall`) and how Python answers it (:class:`Reply`),
a durable piece that has to run (:class:`Ticket`).

Each long operation takes an optional ``callback``: without one it blocks
the calling thread with the GIL released and returns its value; with one it
returns ``None`` at once and later calls ``callback(ok, value)`` from a
thread of the runtime's blocking pool (``value`` is the result when ``ok``,
else the exception). ``jamjet._runtime.call_async`` makes that awaitable.

Errors are the exceptions of :mod:`jamjet.errors`. Results that are data
cross as JSON text."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from typing import Any, Literal, final, overload

__all__ = [
    "Runtime",
    "Workflow",
    "StepCall",
    "Reply",
    "Ticket",
    "Inbox",
    "cli_main",
    "compile",
    "compile_file",
    "__version__",
    "debug_build",
]

__version__: str
debug_build: bool
"""Whether this module is a debug build (what a benchmark must not measure)."""

_Callback = Callable[[bool, Any], object]
"""``callback(ok, value)``: ``value`` is the result when ``ok``, else the exception."""

_Handler = Callable[["StepCall", "Reply"], object]
"""What a host function is registered as: called with the step's call and
the reply to answer it through (now, or later from another thread)."""

@final
class Workflow:
    """A compiled workflow: the IR of a YAML document (written by hand, or
    by the Python layer for a ``jamjet.Workflow`` built in Python)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def source(self) -> str:
        """The document it was compiled from."""

    def content_hash(self) -> str:
        """The content hash executions record (equal IR, equal hash)."""

    def ir_json(self) -> str:
        """The IR as JSON text."""

    def nodes(self) -> list[str]:
        """The node ids, in the IR's order."""

def compile(source: str, file: str) -> Workflow:
    """Compile a YAML (or JSON) document; ``file`` names it in the findings.

    Raises :class:`jamjet.ValidationError` with ``findings`` (file, line,
    column, node, message each) when it does not compile."""

def compile_file(path: str | os.PathLike[str]) -> Workflow:
    """Compile a workflow file (:class:`jamjet.ValidationError` with its
    findings, or naming the file when it cannot be read)."""

def cli_main(argv: list[str]) -> int:
    """Run the ``jamjet`` command line with ``argv`` (its first item the
    program name); returns the exit code."""

@final
class Runtime:
    """A runtime: the in-memory journal, or sled in a data dir (one process
    holds a data dir at a time: :class:`jamjet.StoreLocked` otherwise)."""

    def __new__(cls, data_dir: str | os.PathLike[str] | None = None) -> Runtime:
        """Open a runtime: on sled in ``data_dir``, or in memory without one.
        Nothing resumes by itself: a keyed run attaches to (and resumes) its
        execution, ``resume_all`` resumes the rest."""

    @property
    def data_dir(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    def add_function(
        self,
        name: str,
        handler: _Handler,
        description: str | None = None,
        parameters: str | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        """Register ``handler(call, reply)`` as the host function ``name``
        (what a ``type: function`` node names). With ``description`` and
        ``parameters`` (a JSON Schema, as JSON text) it is also a tool agents
        can call. With an ``inbox`` (an async handler's), its calls are
        queued there for the loop that drains it, instead of called on a
        caller thread."""

    @overload
    def register(self, workflow: Workflow, replace: bool = False, callback: None = None) -> str:
        """Register ``workflow`` under its id and version, durably (what a
        server offers by id). Returns the content hash."""
    @overload
    def register(self, workflow: Workflow, replace: bool, callback: _Callback) -> None: ...
    @overload
    def register(self, workflow: Workflow, replace: bool = False, *, callback: _Callback) -> None: ...

    @overload
    def run(
        self, workflow: Workflow, input: str, key: str | None = None, wait: bool = True, callback: None = None
    ) -> str:
        """Start an execution of ``workflow`` with ``input`` (JSON text), or,
        with a ``key`` already used, find that one (resuming it here when it
        is not finished). Then wait until it ends or parks on the outside (an
        event, an approval). Returns JSON: ``{id, started, status, state,
        error, usage, steps, node, waiting}`` (without ``wait``: ``{id,
        started, status}`` once it started)."""
    @overload
    def run(
        self, workflow: Workflow, input: str, key: str | None = None, wait: bool = True, *, callback: _Callback
    ) -> None: ...

    def stream(
        self,
        workflow: Workflow,
        input: str,
        on_item: Callable[[int, str, str], None],
        key: str | None = None,
        *,
        callback: _Callback,
    ) -> None:
        """``run``, following the execution: ``on_item(i, kind, json)`` gets
        each piece of a streamed model reply (``"token"``) and each record
        (``"event"``), numbered from 0 in the order they happened (calls may
        overlap: order them by ``i``), and last ``"end"`` with the same JSON
        as ``run``; ``callback`` gets that JSON too, or the error."""
    @overload
    def settle(self, id: str, callback: None = None) -> str:
        """Wait for execution ``id`` to end or park; the same JSON as ``run``."""
    @overload
    def settle(self, id: str, callback: _Callback) -> None: ...

    def outcome(self, id: str) -> str:
        """Where execution ``id`` stands now, without waiting; the same JSON."""

    @overload
    def signal(self, id: str, key: str, payload: str, callback: None = None) -> None:
        """Deliver the event ``key`` (a wait's correlation key) with
        ``payload`` (JSON text) to execution ``id``."""
    @overload
    def signal(self, id: str, key: str, payload: str, callback: _Callback) -> None: ...

    @overload
    def approve(
        self,
        id: str,
        approved: bool,
        node: str | None = None,
        call: str | None = None,
        by: str | None = None,
        comment: str | None = None,
        callback: None = None,
    ) -> str:
        """Decide the approval execution ``id`` waits on (``node``, or the
        tool call ``call``; ``by`` defaults to ``python``). Returns the node
        (or call) decided."""
    @overload
    def approve(
        self,
        id: str,
        approved: bool,
        node: str | None = None,
        call: str | None = None,
        by: str | None = None,
        comment: str | None = None,
        *,
        callback: _Callback,
    ) -> None: ...

    @overload
    def cancel(self, id: str, reason: str = "cancelled from Python", callback: None = None) -> None:
        """Cancel execution ``id``."""
    @overload
    def cancel(self, id: str, reason: str, callback: _Callback) -> None: ...
    @overload
    def cancel(self, id: str, reason: str = "cancelled from Python", *, callback: _Callback) -> None: ...

    def events(self, id: str) -> str:
        """Execution ``id``'s history: JSON, a list of ``{seq, at_ms, event}``."""

    def list(self, status: str | None = None) -> str:
        """The executions in this store: JSON, a list of their index rows
        (``status``: only those with it)."""

    @overload
    def resume_all(self, callback: None = None) -> builtins.list[str]:
        """Resume every execution of this store that was running when its
        process stopped. Returns the ids resumed."""
    @overload
    def resume_all(self, callback: _Callback) -> None: ...

    @property
    def url(self) -> str | None:
        """The URL :meth:`serve` serves at, or ``None``."""
    def serve(self, addr: str = "127.0.0.1:0", a2a: bool = True) -> str:
        """Serve the REST API (and the A2A agents of the workflows
        registered before this call) from this process, on a loopback
        address only; returns ``http://127.0.0.1:PORT``. Stops on
        :meth:`stop_serving` or :meth:`close`."""
    def stop_serving(self) -> None:
        """Stop serving (nothing when not serving)."""
    def close(self) -> None:
        """Stop the runtime: its executions stop where they are (a durable
        one resumes from there), and the journal is flushed and released."""

@final
class StepCall:
    """What one step (a ``function`` node, or a tool an agent calls) is
    called with. ``input`` is the state (or the tool's arguments) as JSON
    text."""

    @property
    def execution_id(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def attempt(self) -> int:
        """1 for the first attempt, then 2, 3... on retries."""

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and crashes: pass it to what you call."""

    @property
    def input(self) -> str: ...
    @overload
    def piece(self, name: str, callback: None = None) -> tuple[Literal["done", "run"], Any]:
        """Begin the durable piece ``name`` of this step: ``("done", json)``
        when an earlier attempt journaled it (its result, read back, JSON
        text), or ``("run", ticket)`` when it has to run now (a
        :class:`Ticket`)."""
    @overload
    def piece(self, name: str, callback: _Callback) -> None: ...

    @overload
    def agent(self, name: str, message: str, callback: None = None) -> str:
        """Run the workflow's agent ``name`` on ``message`` inside this step,
        every model and tool call journaled in the step's sequence (read back
        on a retry or after a crash). Returns JSON ``{output, value, usage,
        calls}`` (``calls``: the run's journaled calls, ``{n, kind, name,
        request, response, usage}`` each, read back ones included);
        :class:`jamjet.AgentFailed` (``node``: the error class) when it fails."""
    @overload
    def agent(self, name: str, message: str, callback: _Callback) -> None: ...

    @overload
    def model(
        self,
        name: str,
        config: str,
        prompt: str,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        callback: None = None,
    ) -> str:
        """Ask a model inside the step (``config``: a ``models:`` entry as
        JSON), journaled in the step's sequence and read back when the step
        runs again; JSON ``{text, usage, raw}``."""
    @overload
    def model(
        self,
        name: str,
        config: str,
        prompt: str,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        *,
        callback: _Callback,
    ) -> None: ...

@final
class Reply:
    """How Python answers a step: once, with ``ok(json)`` or ``fail(message,
    class)``. A reply dropped unanswered fails the step."""

    def ok(self, json: str) -> bool:
        """The step's result, as JSON text (an object: the new state, a
        patch, or a tool's answer). Returns whether the step was still
        waiting."""

    def fail(self, message: str, class_: str = "function", /) -> bool:
        """The step failed: ``class`` is an error class of the journal, as
        ``retry_on`` names it (``function``, the default, is retried per the
        node's policy; ``client_error`` is not). An unknown class is
        ``function``. Returns whether the step was still waiting."""

@final
class Ticket:
    """A durable piece that has to run: run it, then ``finish`` with its result."""

    @overload
    def finish(self, json: str | None = None, error: str | None = None, callback: None = None) -> None:
        """The piece's result as JSON text (``error`` instead: it failed, and
        nothing is journaled). Returns once the result is durable."""
    @overload
    def finish(self, json: str | None = None, error: str | None = None, *, callback: _Callback) -> None: ...

@final
class Inbox:
    """Where async handlers' calls wait for the loop that runs them, handed
    over without the GIL: a queued call rings ``fileno()`` (when the queue
    was empty and the loop is not looking), and the loop ``drain``s the
    queue (``loop.add_reader(inbox.fileno(), ...)``). Unix only:
    ``Inbox()`` raises ``NotImplementedError`` elsewhere."""

    def __new__(cls) -> Inbox: ...
    def fileno(self) -> int:
        """The file descriptor that is readable when calls wait."""

    def pending(self) -> bool:
        """Whether calls wait."""

    def wait(self, seconds: float) -> bool:
        """Look for a call for up to ``seconds`` (at most 1 ms) with the GIL
        released; returns whether calls wait."""

    def look(self, looking: bool) -> None:
        """Say whether the loop polls ``pending()`` (calls then ring no
        bell); after ``look(False)`` it checks ``pending()`` once more."""

    def drain(self) -> list[tuple[Any, StepCall, Reply]]:
        """The waiting calls, oldest first: ``(handler, call, reply)`` each
        (the handler as ``add_function`` was given it)."""

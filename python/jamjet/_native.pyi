"""The native module: the Rust runtime embedded in this process (PyO3).

Long operations take ``callback=``: without it they block the calling
thread with the GIL released; with it they return ``None`` at once and
call ``callback(ok, value)`` later (``value``: the result, or the
exception)."""

from collections.abc import Callable
from os import PathLike
from typing import Any, Literal

__version__: str

_Callback = Callable[[bool, Any], None]

class Workflow:
    """A compiled workflow: the IR of a YAML document."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def source(self) -> str:
        """The YAML (or JSON) document it was compiled from."""
    def content_hash(self) -> str:
        """The content hash executions record (equal IR, equal hash)."""
    def ir_json(self) -> str:
        """The IR as JSON text."""
    def nodes(self) -> list[str]:
        """The node ids, in the IR's order."""

def compile(source: str, file: str) -> Workflow:
    """Compile a YAML (or JSON) document; ``file`` names it in the findings
    of the ``jamjet.ValidationError`` a document with errors raises."""

def compile_file(path: str | PathLike[str]) -> Workflow:
    """Compile a workflow file (``jamjet.ValidationError`` with line:column findings)."""

def cli_main(argv: list[str]) -> int:
    """Run the ``jamjet`` command line; returns the exit code."""

class Ticket:
    """A durable piece that has to run: run it, then ``finish``."""

    def finish(
        self, json: str | None = None, error: str | None = None, callback: _Callback | None = None
    ) -> None:
        """The piece's result as JSON text (or ``error``: nothing is journaled)."""

class StepCall:
    """What a step (a ``function`` node, or a tool an agent calls) is called with."""

    @property
    def execution_id(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def input(self) -> str:
        """The state (or the tool's arguments) as JSON text."""
    def piece(
        self, name: str, callback: _Callback | None = None
    ) -> tuple[Literal["done"], str] | tuple[Literal["run"], Ticket]:
        """Begin the durable piece ``name``: ``("done", json)`` when journaled
        before, ``("run", ticket)`` when it has to run now."""
    def agent(self, name: str, message: str, callback: _Callback | None = None) -> str:
        """Run the workflow's agent ``name`` inside the step; JSON ``{output, value, usage}``."""
    def model(
        self,
        name: str,
        config: str,
        prompt: str,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        callback: _Callback | None = None,
    ) -> str:
        """Ask a model inside the step (``config``: a ``models:`` entry as
        JSON), journaled in the step's sequence and read back when the step
        runs again; JSON ``{text, usage, raw}``."""

class Reply:
    """How Python answers a step: once."""

    def ok(self, json: str) -> bool: ...
    def fail(self, message: str, error_class: str = "function", /) -> bool: ...

class Runtime:
    """A runtime: in memory, or on sled in ``data_dir``."""

    def __init__(self, data_dir: str | PathLike[str] | None = None) -> None: ...
    @property
    def data_dir(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def url(self) -> str | None:
        """The URL :meth:`serve` serves at, or ``None``."""
    def add_function(
        self,
        name: str,
        handler: Callable[[StepCall, Reply], None],
        description: str | None = None,
        parameters: str | None = None,
    ) -> None: ...
    def register(self, workflow: Workflow, replace: bool = False, callback: _Callback | None = None) -> str: ...
    def run(
        self,
        workflow: Workflow,
        input: str,
        key: str | None = None,
        wait: bool = True,
        callback: _Callback | None = None,
    ) -> str:
        """JSON ``{id, started, status, state, error, usage, steps, node, waiting}``."""
    def settle(self, id: str, callback: _Callback | None = None) -> str: ...
    def outcome(self, id: str) -> str: ...
    def signal(self, id: str, key: str, payload: str, callback: _Callback | None = None) -> None: ...
    def approve(
        self,
        id: str,
        approved: bool,
        node: str | None = None,
        call: str | None = None,
        by: str | None = None,
        comment: str | None = None,
        callback: _Callback | None = None,
    ) -> str: ...
    def cancel(self, id: str, reason: str = ..., callback: _Callback | None = None) -> None: ...
    def events(self, id: str) -> str: ...
    def list(self, status: str | None = None) -> str: ...
    def resume_all(self, callback: _Callback | None = None) -> list[str]: ...
    def serve(self, addr: str = "127.0.0.1:0", a2a: bool = True) -> str:
        """Serve the REST API and A2A agents on loopback from this process;
        returns ``http://127.0.0.1:PORT``."""
    def stop_serving(self) -> None: ...
    def close(self) -> None: ...

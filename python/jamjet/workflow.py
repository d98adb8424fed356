"""The Workflow API: a Pydantic state and ``@wf.step`` functions, run by
the Rust runtime in this process."""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from . import _native
from ._runtime import Runtime, call_async, memory_runtime, on_step_loop, runtime_for
from ._schema import state_schema
from ._steps import BadResult, Handler
from .errors import ExecutionCancelled, JamjetError, StepFailed, ValidationError

S = TypeVar("S", bound=BaseModel)

# The state key a routed step's choice is journaled under.
ROUTE_KEY = "_route"


@dataclass
class Waiting:
    """What a parked execution waits for: an event (``event`` is its
    correlation key) or an approval (``prompt``)."""

    node: str
    kind: str
    event: str | None = None
    prompt: str | None = None
    call: str | None = None


@dataclass
class RunResult(Generic[S]):
    """How a run ended (or where it parked)."""

    state: S
    """The final state (for a parked run: the state so far)."""
    execution_id: str
    status: str
    """``completed``, or ``waiting`` (see :attr:`waiting`)."""
    steps_executed: int
    total_duration_us: int
    usage: dict[str, Any]
    """Tokens and cost of every model call: ``input_tokens``, ``output_tokens``, ``cost_usd``."""
    waiting: list[Waiting] = field(default_factory=list)
    _runtime: Runtime | None = field(default=None, repr=False)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The execution's journal: ``{seq, at_ms, event}`` records."""
        if self._runtime is None:
            return []
        return self._runtime.events(self.execution_id)

    @property
    def completed(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True)
class StreamChunk:
    """What :meth:`Workflow.stream` yields, in the order it happened.

    - ``kind == "token"``: a piece of a model reply, as it is written (a
      model node with ``stream: true``): ``text``, ``node``, ``attempt``,
      and ``restarted`` (an earlier stream of this step was cut off, by a
      retry or a crash: start its text over);
    - ``kind == "event"``: a record of the journal, once it is durable
      (``event``: ``{seq, at_ms, event}``);
    - ``kind == "result"``, last: ``result``, the :class:`RunResult`.
    """

    kind: str
    text: str = ""
    node: str | None = None
    attempt: int = 0
    restarted: bool = False
    event: dict[str, Any] | None = None
    result: RunResult[Any] | None = None


@dataclass
class _Step:
    name: str
    fn: Callable[..., Any]
    routes: dict[str, Callable[[Any], bool]] | None
    retry: dict[str, Any] | None
    timeout_ms: int | None
    human_approval: bool | str


@dataclass
class _Wait:
    name: str
    event: str | None
    duration_ms: int | None
    timeout_ms: int | None
    output_key: str | None


def decision_of(decision: str | bool) -> bool:
    """Whether a decision approves: ``"approved"``/``True`` or
    ``"rejected"``/``False``; anything else is a ValidationError."""
    if isinstance(decision, str):
        if decision not in ("approved", "rejected"):
            raise ValidationError(f"decision is `approved` or `rejected`, not `{decision}`")
        return decision == "approved"
    return bool(decision)


def _ms(seconds: float | None, what: str) -> int | None:
    if seconds is None:
        return None
    if seconds <= 0:
        raise ValidationError(f"{what} must be more than 0 seconds, not {seconds}")
    return max(1, int(seconds * 1000))


def _retry(retry: int | Mapping[str, Any] | None, step: str) -> dict[str, Any] | None:
    if retry is None:
        return None
    if isinstance(retry, bool) or not isinstance(retry, (int, Mapping)):
        raise ValidationError(f"step `{step}`: retry= is a number of attempts or a policy dict, not {retry!r}")
    policy: dict[str, Any] = {"max_attempts": retry} if isinstance(retry, int) else dict(retry)
    policy.setdefault("delay_ms", 100)
    policy.setdefault("backoff", "exponential")
    policy.setdefault("retry_on", ["function", "timeout", "rate_limited", "server_error", "connection", "panic"])
    return policy


class Workflow:
    """A workflow of Python steps over a Pydantic state.

    ``Workflow("name")`` runs in memory; ``Workflow("name", store=".jamjet")``
    journals every step on sled in that directory (durable across crashes:
    run again with the same ``key`` to resume), and
    ``store="postgres://user@host/db"`` on the PostgreSQL store that many
    processes share (each execution run by one at a time). ``runtime=`` shares one
    :class:`jamjet.Runtime` between workflows. ``agents=`` declares the
    :class:`jamjet.Agent` objects its steps run (those a step function
    names directly are found without it: see :mod:`jamjet.agent`)."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.1.0",
        store: str | os.PathLike[str] | None = None,
        runtime: Runtime | None = None,
        state: type[BaseModel] | None = None,
        max_steps: int | None = None,
        timeout: float | None = None,
        agents: Iterable[Any] = (),
    ) -> None:
        if store is not None and runtime is not None:
            raise ValidationError("give a Workflow store= or runtime=, not both")
        self.name = name
        self.version = version
        self.runtime = runtime or (runtime_for(store) if store is not None else memory_runtime())
        self._state_cls = state
        self._nodes: list[_Step | _Wait] = []
        self._max_steps = max_steps
        self._timeout_ms = _ms(timeout, "timeout")
        self._compiled: _native.Workflow | None = None
        self._registered_on: set[int] = set()
        self.models: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self._extra_functions: dict[str, tuple[Any, str | None, dict[str, Any] | None]] = {}
        # The jamjet.Agent objects its steps run (see jamjet.agent), and the
        # MCP servers of its `mcp: servers:`.
        self._agent_objects: list[Any] = list(agents)
        self.mcp: dict[str, dict[str, Any]] = {}

    # ----- declaring -----

    def state(self, cls: type[S]) -> type[S]:
        """Declare the state model (a Pydantic ``BaseModel``); use as a decorator."""
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            raise ValidationError(f"@{self.name}.state: {cls!r} is not a Pydantic BaseModel")
        self._state_cls = cls
        self._changed()
        return cls

    @overload
    def step(self, fn: Callable[..., Any], /) -> Callable[..., Any]: ...
    @overload
    def step(
        self,
        *,
        name: str | None = None,
        next: Mapping[str, Callable[[Any], bool]] | str | None = None,
        retry: int | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        human_approval: bool | str = False,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def step(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        next: Mapping[str, Callable[[Any], bool]] | str | None = None,
        retry: int | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        human_approval: bool | str = False,
    ) -> Any:
        """Declare a step: a function (sync or async) from the state to the
        new state (a model, or a dict of the keys it changes).

        Steps run in the order they are declared unless routed:
        ``next={"write": lambda s: s.ok, "retry": lambda s: not s.ok}``
        goes on to the first step whose condition holds on the step's new
        state (none holds: the next declared step). ``retry=3`` (or a
        policy dict: ``max_attempts``, ``backoff``, ``delay_ms``) retries a
        step that raises; ``timeout=`` (seconds) bounds each attempt;
        ``human_approval=True`` (or a prompt) parks the run for a person's
        decision before the step runs."""

        def declare(f: Callable[..., Any]) -> Callable[..., Any]:
            step = name or f.__name__
            if any(n.name == step for n in self._nodes):
                raise ValidationError(f"workflow `{self.name}`: two steps are both `{step}`")
            routes: dict[str, Callable[[Any], bool]] | None
            if next is None:
                routes = None
            elif isinstance(next, str):
                routes = {next: lambda _s: True}
            else:
                routes = dict(next)
            self._nodes.append(
                _Step(step, f, routes, _retry(retry, step), _ms(timeout, f"step `{step}`: timeout"), human_approval)
            )
            self._changed()
            return f

        return declare(fn) if fn is not None else declare

    def wait(
        self,
        name: str,
        *,
        event: str | None = None,
        duration: float | None = None,
        timeout: float | None = None,
        output_key: str | None = None,
    ) -> None:
        """Declare a wait, in step order: for the event whose correlation key
        is ``event`` (a template: ``"payment:{{ state.order_id }}"``; its
        payload goes to the state key ``output_key``), or for ``duration``
        seconds (a durable timer)."""
        if (event is None) == (duration is None):
            raise ValidationError(f"wait `{name}`: give it event= or duration=, one of the two")
        if any(n.name == name for n in self._nodes):
            raise ValidationError(f"workflow `{self.name}`: two steps are both `{name}`")
        self._nodes.append(
            _Wait(name, event, _ms(duration, f"wait `{name}`: duration"), _ms(timeout, f"wait `{name}`: timeout"), output_key)
        )
        self._changed()

    def _changed(self) -> None:
        """The declaration changed: compile and register it again."""
        self._compiled = None
        self._registered_on.clear()

    # ----- compiling -----

    def _function_name(self, step: str) -> str:
        return f"{self.name}/{step}"

    def _state_schema(self) -> dict[str, Any]:
        """The document's ``state_schema`` (without the routing key)."""
        if self._state_cls is None:
            raise ValidationError(
                f"workflow `{self.name}` has no state model: declare one with @wf.state or Workflow(..., state=Model)"
            )
        return state_schema(self._state_cls)

    def _start_node(self) -> _Step | _Wait:
        """The node the workflow starts at: the first declared."""
        return self._nodes[0]

    def document(self) -> dict[str, Any]:
        """The workflow as the runtime's YAML document (a dict; JSON is YAML)."""
        schema = self._state_schema()
        if not self._nodes:
            raise ValidationError(f"workflow `{self.name}` has no steps")
        if any(isinstance(n, _Step) and n.routes for n in self._nodes):
            schema[ROUTE_KEY] = "optional[str]"
        entry = lambda n: f"approve_{n.name}" if isinstance(n, _Step) and n.human_approval else n.name  # noqa: E731
        head: dict[str, Any] = {"id": self.name, "version": self.version, "state_schema": schema}
        head["start"] = entry(self._start_node())
        if self._timeout_ms:
            head["timeout_ms"] = self._timeout_ms
        if self._max_steps:
            head["max_steps"] = self._max_steps
        nodes: dict[str, Any] = {}
        for i, n in enumerate(self._nodes):
            after = entry(self._nodes[i + 1]) if i + 1 < len(self._nodes) else None
            if isinstance(n, _Wait):
                node: dict[str, Any] = {"type": "wait"}
                if n.event is not None:
                    node["event"] = n.event
                if n.duration_ms is not None:
                    node["duration_ms"] = n.duration_ms
                if n.timeout_ms is not None:
                    node["timeout_ms"] = n.timeout_ms
                if n.output_key:
                    node["output_key"] = n.output_key
                if after:
                    node["next"] = after
                nodes[n.name] = node
                continue
            if n.human_approval:
                prompt = n.human_approval if isinstance(n.human_approval, str) else f"Run step `{n.name}`?"
                nodes[entry(n)] = {"type": "approval", "prompt": prompt, "next": n.name, "on_reject": f"{n.name}__rejected"}
                nodes[f"{n.name}__rejected"] = {"type": "end"}
            node = {"type": "function", "function": self._function_name(n.name)}
            if n.retry:
                node["retry"] = n.retry
            if n.timeout_ms:
                node["timeout_ms"] = n.timeout_ms
            if n.routes:
                node["next"] = f"{n.name}__route"
                names = {m.name: entry(m) for m in self._nodes}
                conditions = []
                for target in n.routes:
                    if target not in names:
                        raise ValidationError(
                            f"step `{n.name}`: next= names `{target}`, which is not a step of `{self.name}` "
                            f"(its steps: {', '.join(names)})",
                            node=n.name,
                        )
                    conditions.append({"when": f"state.{ROUTE_KEY} == {json.dumps(target)}", "next": names[target]})
                route: dict[str, Any] = {"type": "branch", "conditions": conditions}
                route["default"] = after or f"{n.name}__end"
                if not after:
                    nodes[f"{n.name}__end"] = {"type": "end"}
                nodes[f"{n.name}__route"] = route
            elif after:
                node["next"] = after
            nodes[n.name] = node
        doc: dict[str, Any] = {"workflow": head}
        from .agent import declare_agents

        declare_agents(self)
        if self.mcp:
            doc["mcp"] = {"servers": self.mcp}
        if self.models:
            doc["models"] = self.models
        if self.agents:
            doc["agents"] = self.agents
        doc["nodes"] = nodes
        return doc

    def to_yaml(self) -> str:
        """The workflow's YAML document (as JSON, which is YAML)."""
        return json.dumps(self.document(), indent=2) + "\n"

    def compile(self) -> _native.Workflow:
        """Compile the workflow with the runtime's YAML compiler: the same
        IR a YAML file gives (``.source`` is the document, ``.ir_json()``
        the IR). Errors are :class:`jamjet.ValidationError` naming the step."""
        if self._compiled is None:
            self._compiled = _native.compile(self.to_yaml(), f"{self.name} (built in Python)")
        return self._compiled

    # ----- registering -----

    def _handler(self, step: _Step) -> Handler:
        cls = self._state_cls
        assert cls is not None
        # Pydantic's own validator and serializer: what model_validate and
        # model_dump call, without their per-call overhead.
        validator = cls.__pydantic_validator__
        serializer = cls.__pydantic_serializer__
        routes = step.routes
        # Whether the state carries the route key (any step of the workflow is routed).
        routes_here = any(isinstance(n, _Step) and n.routes for n in self._nodes)
        what = f"step `{step.name}`"

        def read(text: str) -> Any:
            if not routes_here:
                # The input is the state's JSON: validated straight from the text.
                return validator.validate_json(text)
            data = json.loads(text)
            data.pop(ROUTE_KEY, None)
            return cls.model_validate(data)

        def write(before: Any, out: Any) -> str:
            if out is None:
                new = before
            elif isinstance(out, cls):
                new = out
            elif isinstance(out, BaseModel):
                raise BadResult(f"returned a `{type(out).__name__}`, not the state `{cls.__name__}`")
            elif isinstance(out, Mapping):
                merged = serializer.to_python(before)  # before.model_dump()
                merged.update(out)
                new = merged
            else:
                raise BadResult(f"returned {type(out).__name__} {out!r:.80}: a step returns the state or a dict of its keys")
            try:
                data = type(new).__pydantic_serializer__.to_python(new, mode="json") if isinstance(new, BaseModel) else new
                checked = validator.validate_python(data)
            except PydanticValidationError as e:
                raise BadResult(f"returned a state that does not validate as `{cls.__name__}`:\n{e}") from None
            if not routes:
                return serializer.to_json(checked).decode()  # checked.model_dump_json()
            data = checked.model_dump(mode="json")
            data[ROUTE_KEY] = next((t for t, cond in routes.items() if cond(checked)), None)
            return json.dumps(data)

        return Handler(step.fn, what, read, write)

    def _ensure(self, runtime: Runtime) -> _native.Workflow:
        compiled = self.compile()
        if id(runtime) not in self._registered_on:
            for n in self._nodes:
                if isinstance(n, _Step):
                    runtime.add_function(self._function_name(n.name), self._handler(n))
            for fname, (handler, description, parameters) in self._extra_functions.items():
                runtime.add_function(fname, handler, description, parameters)
            self._registered_on.add(id(runtime))
        return compiled

    def register(self, runtime: Runtime | None = None) -> str:
        """Teach ``runtime`` (default: the workflow's) this workflow's steps,
        and register it under its id and version (what a server offers).
        Returns the content hash."""
        rt = runtime or self.runtime
        compiled = self._ensure(rt)
        return rt.native.register(compiled, True)

    # ----- running -----

    def _input(self, state: Any) -> str:
        if self._state_cls is None and isinstance(state, BaseModel):
            self._state_cls = type(state)
        cls = self._state_cls
        if cls is None:
            raise ValidationError(f"workflow `{self.name}` has no state model")
        if isinstance(state, Mapping):
            try:
                state = cls.model_validate(state)
            except PydanticValidationError as e:
                raise ValidationError(f"the initial state does not validate as `{cls.__name__}`:\n{e}") from None
        if not isinstance(state, cls):
            raise ValidationError(f"the initial state is a `{type(state).__name__}`, not `{cls.__name__}`")
        data = state.model_dump(mode="json")
        if any(isinstance(n, _Step) and n.routes for n in self._nodes):
            data[ROUTE_KEY] = None
        return json.dumps(data)

    def _result(self, report: str, began: float) -> RunResult[Any]:
        r = json.loads(report)
        elapsed = int((time.perf_counter() - began) * 1e6)
        status = r["status"]
        if status == "failed":
            raise StepFailed(
                f"execution {r['id']} failed at step `{r.get('node') or '-'}`: {r.get('error') or 'no message'}",
                execution_id=r["id"],
                node=r.get("node"),
            )
        if status == "cancelled":
            raise ExecutionCancelled(f"execution {r['id']} was cancelled: {r.get('error') or ''}", execution_id=r["id"])
        data = dict(r["state"])
        data.pop(ROUTE_KEY, None)
        state = self._read_state(data, r["id"])
        waiting = [
            Waiting(node=w["node"], kind=w["kind"], event=w.get("event"), prompt=w.get("prompt"), call=w.get("call"))
            for w in r.get("waiting", [])
        ]
        return RunResult(
            state=state,
            execution_id=r["id"],
            status=status,
            steps_executed=r["steps"],
            total_duration_us=elapsed,
            usage=r["usage"],
            waiting=waiting,
            _runtime=self.runtime,
        )

    def _read_state(self, data: dict[str, Any], execution_id: str) -> Any:
        """A run's state (JSON data) as :attr:`RunResult.state` holds it."""
        assert self._state_cls is not None
        try:
            return self._state_cls.model_validate(data)
        except PydanticValidationError as e:
            raise JamjetError(
                f"execution {execution_id}: its final state does not validate as `{self._state_cls.__name__}`:\n{e}",
                execution_id=execution_id,
            ) from None

    def run_sync(self, state: Any, *, key: str | None = None) -> RunResult[Any]:
        """Run to the end (or until it parks on an event or an approval:
        ``result.status == "waiting"``). With ``key``, a run with that key
        that exists already is attached to (and resumed where it stopped)
        instead of started again."""
        if on_step_loop():
            raise JamjetError("run_sync inside an async step would block the loop it runs on: use `await wf.run(...)`")
        began = time.perf_counter()
        compiled = self._ensure(self.runtime)
        text = self.runtime.native.run(compiled, self._input(state), key)
        return self._result(text, began)

    async def run(self, state: Any, *, key: str | None = None) -> RunResult[Any]:
        """The async form of :meth:`run_sync`."""
        began = time.perf_counter()
        compiled = self._ensure(self.runtime)
        native = self.runtime.native
        text = await call_async(lambda cb: native.run(compiled, self._input(state), key, callback=cb))
        return self._result(text, began)

    async def stream(self, state: Any, *, key: str | None = None) -> AsyncIterator[StreamChunk]:
        """Run as :meth:`run` does, yielding what happens as it happens:
        the pieces of streamed model replies (``stream: true`` on a model
        node), the journal's records, then the result (see
        :class:`StreamChunk`). Only the whole reply is journaled, once."""
        began = time.perf_counter()
        compiled = self._ensure(self.runtime)
        native = self.runtime.native
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()

        def on_item(i: int, kind: str, text: str) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (i, kind, text))
            except RuntimeError:  # the caller's loop closed meanwhile
                pass

        done = asyncio.ensure_future(
            call_async(lambda cb: native.stream(compiled, self._input(state), on_item, key, callback=cb))
        )
        # The native side numbers the items; its calls may arrive out of
        # order. The last one, "end", carries the result.
        waiting: list[tuple[int, str, str]] = []
        following = 0
        try:
            while True:
                if done.done():
                    error = done.exception()
                    if error is not None:
                        raise error
                    # It ended: what is on its way ("end" last) still comes.
                    heapq.heappush(waiting, await queue.get())
                else:
                    get = asyncio.ensure_future(queue.get())
                    finished, _ = await asyncio.wait({get, done}, return_when=asyncio.FIRST_COMPLETED)
                    if get not in finished:
                        get.cancel()
                        continue
                    heapq.heappush(waiting, get.result())
                while waiting and waiting[0][0] == following:
                    _, kind, text = heapq.heappop(waiting)
                    following += 1
                    if kind == "end":
                        yield StreamChunk(kind="result", result=self._result(text, began))
                        return
                    yield _chunk(kind, text)
        finally:
            if not done.done():
                done.cancel()

    def resume(self, execution_id: str) -> RunResult[Any]:
        """Wait for execution ``execution_id`` (of this workflow) to end or
        park again, resuming it here if it is not live."""
        began = time.perf_counter()
        self._ensure(self.runtime)
        return self._result(self.runtime.native.settle(execution_id), began)

    def signal(self, execution_id: str, key: str, payload: Any = None, *, wait: bool = True) -> RunResult[Any] | None:
        """Deliver the event ``key`` with ``payload`` (JSON data or a model)
        to a waiting execution; then (``wait=True``) wait for it to end or
        park again."""
        from ._steps import to_json

        self._ensure(self.runtime)
        self.runtime.native.signal(execution_id, key, json.dumps(to_json(payload) if payload is not None else {}))
        return self.resume(execution_id) if wait else None

    def approve(
        self,
        execution_id: str,
        decision: str | bool = "approved",
        *,
        node: str | None = None,
        call: str | None = None,
        comment: str | None = None,
        by: str | None = None,
        wait: bool = True,
    ) -> RunResult[Any] | None:
        """Decide the approval an execution waits on: ``decision`` is
        ``"approved"``/``True`` or ``"rejected"``/``False``; then (``wait=True``)
        wait for it to end or park again."""
        approved = decision_of(decision)
        self._ensure(self.runtime)
        if node is not None and not node.startswith("approve_") and any(n.name == node for n in self._nodes):
            node = f"approve_{node}"
        self.runtime.native.approve(execution_id, approved, node, call, by, comment)
        return self.resume(execution_id) if wait else None

    def cancel(self, execution_id: str, reason: str = "cancelled from Python") -> None:
        self.runtime.native.cancel(execution_id, reason)

    def __repr__(self) -> str:
        return f"jamjet.Workflow({self.name!r}, steps={[n.name for n in self._nodes]})"


def _chunk(kind: str, text: str) -> StreamChunk:
    data = json.loads(text)
    if kind == "token":
        return StreamChunk(
            kind="token",
            text=data["text"],
            node=data["node"],
            attempt=data["attempt"],
            restarted=data["restarted"],
        )
    return StreamChunk(kind="event", event=data)

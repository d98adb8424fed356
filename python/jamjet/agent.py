"""Agents: a model, tools, instructions and a strategy, run by the core's
agents (the YAML ``agents:`` entries), from Python.

Where an agent runs decides how it is journaled:

- **Inside a step** of a :class:`jamjet.Workflow` (``await agent.run(...)``
  in a ``@wf.step`` function), it runs through the step's call: every model
  call and tool call is journaled in the step's sequence as it completes,
  so a step retried, or resumed after a crash, reads them back and sends
  only the interrupted call again (with the same idempotency key). The
  workflow declares the agent in its ``agents:`` (with its models, MCP
  servers and tools): every agent given in ``Workflow(..., agents=[...])``
  and every agent a step function names directly (a global or a closure
  variable its code reads), with the agents those call as tools or debate
  with. An agent a step reaches another way (through a helper function, a
  dict) must be given in ``agents=``; running one that is not declared is a
  :class:`jamjet.ValidationError` naming the step and the agent.
- **Anywhere else** (a script, a notebook, a tool), ``await agent.run(...)``
  and ``agent.run_sync(...)`` run it as a one-node workflow (an ``agent``
  node) on the process's in-memory runtime, or on ``runtime=`` (durable,
  with ``key=``).

A tool call that needs a person's decision (``human_approval=``) parks a
run of the second kind (``result.status == "waiting"``; decide with
:meth:`Agent.approve`); a step cannot park, so inside a step such a call
fails the agent (:class:`jamjet.AgentFailed`) with a message saying so:
put ``human_approval=True`` on the step instead, or run the agent outside
a step."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from . import _native
from ._runtime import Runtime, call_async, current_call, memory_runtime, on_step_loop
from ._steps import Handler
from .workflow import decision_of
from .errors import AgentFailed, JamjetError, ValidationError
from .models import Model
from .tools import MCPServer, MCPTool, Tool, in_tool

if TYPE_CHECKING:
    from .workflow import Waiting, Workflow

__all__ = ["Agent", "AgentResult", "ToolCall", "STRATEGIES"]

STRATEGIES = ("react", "plan-and-execute", "critic", "reflection", "consensus", "debate")
"""How an agent works towards its answer: ``react`` (model and tools in a
loop), ``plan-and-execute`` (a plan, then each step), ``critic`` (draft,
critique scored 1 to 5, revise until ``min_score``), ``reflection`` (answer,
reflect, answer again), ``consensus`` (``samples`` answers, a ``judge``
picks or merges), ``debate`` (``debaters`` argue ``rounds`` rounds, a
``judge`` decides)."""

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# The node a stand-alone run's agent runs as.
_NODE = "run"


@dataclass
class ToolCall:
    """One tool call an agent made, as its journal records it."""

    name: str
    arguments: Any
    """The arguments the model gave (a dict)."""
    result: str
    """What the model was told the tool returned (JSON text for a tool that
    returned data; ``error: ...`` for one that failed)."""
    id: str | None = None


@dataclass
class AgentResult:
    """What an agent run answered, the tool calls it made and what it cost."""

    output: Any
    """The answer: its text; with ``output_schema`` the validated JSON; with
    ``output_type`` an instance of that type."""
    text: str
    """The answer as text."""
    tool_calls: list[ToolCall]
    usage: dict[str, Any]
    """Tokens and cost of the run's model calls: ``input_tokens``,
    ``output_tokens``, ``cost_usd``."""
    calls: list[dict[str, Any]]
    """Every journaled call of the run (models, tools, strategy steps):
    ``{n, kind, name, request, response, usage}``."""
    execution_id: str | None = None
    """The execution it ran in (a step's, or its own)."""
    status: str = "completed"
    """``completed``, or ``waiting`` for tool-call decisions (see :attr:`waiting`)."""
    waiting: list[Waiting] = field(default_factory=list)
    """For a parked run: the tool calls waiting for a decision (``call`` is
    the id :meth:`Agent.approve` takes, ``prompt`` says what is asked)."""
    _runtime: Runtime | None = field(default=None, repr=False)

    @property
    def completed(self) -> bool:
        return self.status == "completed"


def _check_number(value: Any, what: str, agent: str, *, integer: bool, least: float) -> None:
    if value is None:
        return
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < least:
        kind = "an integer" if integer else "a number"
        raise ValidationError(f"agent `{agent}`: {what} must be {kind} of at least {least}, not {value!r}")


class Agent:
    """An agent: a model, tools, instructions and a strategy.

    ::

        researcher = Agent(
            "researcher",
            model="gpt-4o-mini",
            tools=[search_web],
            instructions="Find accurate information on the given topic.",
            strategy="react",
            max_iterations=5,
        )
        result = await researcher.run("Research: durable execution")
        print(result.output, result.tool_calls, result.usage)

    ``model`` is a name (``"gpt-4o-mini"``, ``"claude-sonnet-4-6"``,
    ``"openai/llama3.2"``: see :mod:`jamjet.models`) or a
    :class:`jamjet.Model`; an unknown name is :class:`jamjet.UnknownModel`.
    ``tools`` are ``@jamjet.tool`` functions, MCP tools
    (:class:`jamjet.MCPServer`), other agents (called with a message, their
    calls journaled with the caller's), or names as YAML writes them (a
    function registered on the runtime, ``server.tool``, a remote agent's
    URL). ``instructions`` is the system prompt (a template: ``{{`` starts
    a tag). Limits: ``max_iterations`` (model turns), ``max_cost_usd`` and
    ``max_tokens`` for one run (crossing one fails it as
    ``budget_exceeded``). ``human_approval=True`` makes every tool call
    wait for a person's decision, a list of tools only theirs.
    ``output_schema`` (a JSON Schema) or ``output_type`` (a Pydantic model
    or any type) is what the final answer, parsed as JSON, must fit.
    Strategy parameters: ``min_score`` (critic), ``samples`` and
    ``models`` (consensus), ``debaters`` (agents) and ``rounds`` (debate),
    ``judge`` (a model: consensus, debate)."""

    def __init__(
        self,
        name: str,
        model: str | Model | None = None,
        *,
        tools: Iterable[Any] = (),
        instructions: str = "You are a helpful assistant.",
        strategy: str = "react",
        max_iterations: int | None = None,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        human_approval: bool | Sequence[Any] = False,
        output_schema: dict[str, Any] | None = None,
        output_type: Any = None,
        temperature: float | None = None,
        description: str | None = None,
        min_score: int | None = None,
        samples: int | None = None,
        models: Sequence[str | Model] | None = None,
        debaters: Sequence[Agent] | None = None,
        rounds: int | None = None,
        judge: str | Model | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"agent name {name!r}: use only letters, digits, `_` and `-` (a model calls an agent used as a tool "
                "by its name)"
            )
        where = f"agent `{name}`"
        if model is None:
            raise ValidationError(f"{where} needs a model: model=\"gpt-4o-mini\", or a jamjet.Model(...)")
        if strategy not in STRATEGIES:
            raise ValidationError(f"{where}: unknown strategy `{strategy}` (one of: {', '.join(STRATEGIES)})")
        if not isinstance(instructions, str):
            raise ValidationError(f"{where}: instructions= is text, not {type(instructions).__name__}")
        if output_schema is not None and output_type is not None:
            raise ValidationError(f"{where}: give output_schema= or output_type=, not both")
        _check_number(max_iterations, "max_iterations", name, integer=True, least=1)
        _check_number(max_tokens, "max_tokens", name, integer=True, least=1)
        _check_number(max_cost_usd, "max_cost_usd", name, integer=False, least=0)
        if max_cost_usd is not None and max_cost_usd <= 0:
            raise ValidationError(f"{where}: max_cost_usd must be more than 0, not {max_cost_usd!r}")
        self.name = name
        self.model = Model.named(model, where=where)
        self.tools: list[Tool | MCPTool | Agent | str] = []
        for t in tools:
            if isinstance(t, MCPServer):
                if not t.tools:
                    raise ValidationError(
                        f"{where}: MCP server `{t.name}` is in tools= but names no tools: give them with "
                        f"MCPServer(..., tools=[...]), or put {t.name}.tool(\"name\") in tools="
                    )
                self.tools.extend(t.tools)
            elif isinstance(t, (Tool, MCPTool, Agent, str)):
                self.tools.append(t)
            elif callable(t):
                raise TypeError(
                    f"{where}: tools= takes @jamjet.tool functions, MCP tools, agents or tool names; "
                    f"`{getattr(t, '__name__', t)!s}` is a plain function: decorate it with @jamjet.tool so that it "
                    "has a schema"
                )
            else:
                raise TypeError(f"{where}: tools= cannot take {t!r}")
        self.instructions = instructions
        self.strategy = strategy
        self.max_iterations = max_iterations
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self.human_approval = human_approval
        self.output_type = output_type
        if output_type is not None:
            try:
                self._output_adapter: TypeAdapter[Any] | None = TypeAdapter(output_type)
                output_schema = self._output_adapter.json_schema()
            except Exception as e:
                raise ValidationError(f"{where}: output_type={output_type!r} has no JSON Schema: {e}") from None
        else:
            self._output_adapter = None
        self.output_schema = output_schema
        self.temperature = temperature
        self.description = description
        self.min_score = min_score
        self.samples = samples
        self.sample_models = [Model.named(m, where=f"{where} (models=)") for m in models or ()]
        self.debaters = list(debaters or ())
        for d in self.debaters:
            if not isinstance(d, Agent):
                raise TypeError(f"{where}: debaters= takes jamjet.Agent objects, not {d!r}")
        self.rounds = rounds
        self.judge = Model.named(judge, where=f"{where} (judge=)") if judge is not None else None
        self._approval = self._approval_entry(human_approval)
        self._standalone: _native.Workflow | None = None
        self._registered: dict[int, Runtime] = {}

    # ----- the YAML entry -----

    def _written(self, t: Tool | MCPTool | Agent | str) -> str:
        if isinstance(t, MCPTool):
            return t.written
        if isinstance(t, str):
            return t
        return t.name

    def _approval_entry(self, human_approval: bool | Sequence[Any]) -> str | list[str] | None:
        if human_approval is True:
            return "all"
        if human_approval is False or human_approval is None:
            return None
        if isinstance(human_approval, (str, bytes)) or not isinstance(human_approval, Sequence):
            raise ValidationError(
                f"agent `{self.name}`: human_approval= is True (every tool call) or a list of its tools, "
                f"not {human_approval!r}"
            )
        written = [self._written(t) for t in self.tools]
        names = []
        for t in human_approval:
            w = self._written(t)
            if w not in written:
                raise ValidationError(
                    f"agent `{self.name}`: human_approval= names `{w}`, which is not one of its tools "
                    f"({', '.join(written) or 'it has none'})"
                )
            names.append(w)
        return names or None

    def _entry(self, bundle: _Bundle) -> dict[str, Any]:
        out: dict[str, Any] = {"model": bundle.model(self.model), "instructions": self.instructions}
        if self.tools:
            out["tools"] = [self._written(t) for t in self.tools]
        out["strategy"] = self.strategy
        optional = {
            "max_iterations": self.max_iterations,
            "max_cost_usd": self.max_cost_usd,
            "max_tokens": self.max_tokens,
            "approval": self._approval,
            "output_schema": self.output_schema,
            "temperature": self.temperature,
            "description": self.description,
            "min_score": self.min_score,
            "samples": self.samples,
            "rounds": self.rounds,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.sample_models:
            out["models"] = [bundle.model(m) for m in self.sample_models]
        if self.debaters:
            out["debaters"] = [d.name for d in self.debaters]
        if self.judge is not None:
            out["judge"] = bundle.model(self.judge)
        return out

    def agents_called(self) -> list[Agent]:
        """The agents this one calls: its agent tools, then its debaters."""
        return [t for t in self.tools if isinstance(t, Agent)] + self.debaters

    # ----- running -----

    def _prepare(self, runtime: Runtime) -> _native.Workflow:
        """The one-node workflow a stand-alone run runs (compiled once),
        its tools registered on ``runtime``."""
        if self._standalone is None:
            bundle = _Bundle()
            bundle.add(self)
            head = {
                "id": f"agent-{self.name}",
                "version": "0.1.0",
                "state_schema": {"prompt": "str", "output": "any"},
                "start": _NODE,
            }
            node = {"type": "agent", "agent": self.name, "message": "{{ state.prompt }}", "output_key": "output"}
            doc: dict[str, Any] = {"workflow": head, "models": bundle.models, "agents": bundle.agents}
            if bundle.mcp:
                doc["mcp"] = {"servers": bundle.mcp}
            doc["nodes"] = {_NODE: node}
            self._tools = dict(bundle.tools)
            self._standalone = _native.compile(json.dumps(doc), f"agent `{self.name}` (built in Python)")
        if id(runtime) not in self._registered:
            for t in self._tools.values():
                t.register(runtime)
            self._registered[id(runtime)] = runtime
        return self._standalone

    def _result_of_step(self, call: _native.StepCall, text: str) -> AgentResult:
        r = json.loads(text)
        calls = list(r.get("calls") or [])
        return AgentResult(
            output=self._output(r["value"], r["output"], call.node_id),
            text=r["output"],
            tool_calls=_tool_calls(calls),
            usage=r["usage"],
            calls=calls,
            execution_id=call.execution_id,
        )

    def _output(self, value: Any, text: str, where: str | None) -> Any:
        if self._output_adapter is None:
            return value
        try:
            return self._output_adapter.validate_python(value)
        except PydanticValidationError as e:
            raise AgentFailed(
                f"agent `{self.name}`: its answer fits the output schema but not output_type={self.output_type!r}:\n{e}",
                node="invalid_output",
            ) from None

    def _step_failed(self, call: _native.StepCall, e: JamjetError) -> JamjetError:
        if "there is no agent" in e.message:
            err = ValidationError(
                f"step `{call.node_id}` ran agent `{self.name}`, which its workflow does not declare: give it in "
                f"Workflow(..., agents=[{self.name}]) (an agent the step function names directly is found by itself)",
                execution_id=call.execution_id,
                node=call.node_id,
            )
            err.error_class = "client_error"  # type: ignore[attr-defined]  # the step is not retried
            return err
        if isinstance(e, AgentFailed) and ", and a step cannot wait for one" in e.message:
            head = e.message.split(", and a step cannot wait for one")[0]
            e = AgentFailed(
                f"{head}, and a step cannot wait for one: put human_approval=True on the step instead (the run "
                "parks before the step runs), run the agent outside a step (its run parks: see Agent.approve), or "
                "leave those tools out of the agent's human_approval=",
                execution_id=call.execution_id,
                node=e.node,
            )
        if isinstance(e, AgentFailed):
            e.error_class = e.node  # type: ignore[attr-defined]
        return e

    def _result_of_report(self, runtime: Runtime, report: str) -> AgentResult:
        from .workflow import Waiting

        r = json.loads(report)
        eid = r["id"]
        events = runtime.events(eid)
        if r["status"] == "failed":
            cls = _failure_class(events)
            err = AgentFailed(
                f"agent `{self.name}` failed (execution {eid}): {r.get('error') or 'no message'}",
                execution_id=eid,
                node=cls,
            )
            err.error_class = cls  # type: ignore[attr-defined]
            raise err
        if r["status"] == "cancelled":
            raise AgentFailed(f"agent `{self.name}`: execution {eid} was cancelled", execution_id=eid, node="cancelled")
        calls = _calls_of(events)
        waiting = [
            Waiting(node=w["node"], kind=w["kind"], event=w.get("event"), prompt=w.get("prompt"), call=w.get("call"))
            for w in r.get("waiting", [])
        ]
        value = r["state"].get("output")
        text = value if isinstance(value, str) else (json.dumps(value) if value is not None else "")
        return AgentResult(
            output=self._output(value, text, None) if r["status"] == "completed" else value,
            text=text,
            tool_calls=_tool_calls(calls),
            usage=r["usage"],
            calls=calls,
            execution_id=eid,
            status=r["status"],
            waiting=waiting,
            _runtime=runtime,
        )

    async def run(self, prompt: str, *, key: str | None = None, runtime: Runtime | None = None) -> AgentResult:
        """Run the agent on ``prompt`` (its first user message).

        Inside a step, every call is journaled in the step's sequence (see
        the module docs; ``key`` and ``runtime`` do not apply there).
        Elsewhere it runs as a workflow of its own on ``runtime`` (the
        process's in-memory one by default); with ``key``, a run with that
        key is attached to instead of started again. Failures (a budget
        crossed, an answer that does not fit the output schema, a model
        that cannot be reached) are :class:`jamjet.AgentFailed`, whose
        ``error_class`` says which."""
        if not isinstance(prompt, str):
            raise ValidationError(f"agent `{self.name}`: the prompt is text, not {type(prompt).__name__}")
        call = current_call.get()
        if call is not None and not in_tool.get():
            try:
                text = await call_async(lambda cb: call.agent(self.name, prompt, callback=cb))
            except JamjetError as e:
                raise self._step_failed(call, e) from None
            return self._result_of_step(call, text)
        rt = runtime or memory_runtime()
        compiled = self._prepare(rt)
        native = rt.native
        data = json.dumps({"prompt": prompt, "output": None})
        report = await call_async(lambda cb: native.run(compiled, data, key, callback=cb))
        return self._result_of_report(rt, report)

    def run_sync(self, prompt: str, *, key: str | None = None, runtime: Runtime | None = None) -> AgentResult:
        """:meth:`run`, blocking (for scripts, notebooks and sync steps)."""
        if not isinstance(prompt, str):
            raise ValidationError(f"agent `{self.name}`: the prompt is text, not {type(prompt).__name__}")
        if on_step_loop():
            raise JamjetError(
                f"agent `{self.name}`: run_sync inside an async step would block the loop it runs on: use "
                "`await agent.run(...)`"
            )
        call = current_call.get()
        if call is not None and not in_tool.get():
            try:
                text = call.agent(self.name, prompt)
            except JamjetError as e:
                raise self._step_failed(call, e) from None
            return self._result_of_step(call, text)
        rt = runtime or memory_runtime()
        compiled = self._prepare(rt)
        data = json.dumps({"prompt": prompt, "output": None})
        return self._result_of_report(rt, rt.native.run(compiled, data, key))

    async def approve(
        self,
        result: AgentResult | str,
        decision: bool | str = True,
        *,
        call: str | None = None,
        comment: str | None = None,
        by: str | None = None,
        runtime: Runtime | None = None,
    ) -> AgentResult:
        """Decide a tool call a stand-alone run waits on (``call``: its id,
        from ``result.waiting``; the first one when not given), then wait
        for the run to end or park again."""
        approved = decision_of(decision)
        if isinstance(result, AgentResult):
            eid = result.execution_id
            rt = runtime or result._runtime or memory_runtime()
            if call is None and result.waiting:
                call = result.waiting[0].call
        else:
            eid, rt = result, runtime or memory_runtime()
        if eid is None:
            raise ValidationError(f"agent `{self.name}`: this result has no execution to decide on")
        self._prepare(rt)
        native = rt.native
        await call_async(lambda cb: native.approve(eid, approved, None, call, by or "python", comment, callback=cb))
        report = await call_async(lambda cb: native.settle(eid, callback=cb))
        return self._result_of_report(rt, report)

    # ----- as a tool -----

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool:
        """This agent as a function tool, for a workflow that is not
        Python's (a YAML workflow's agent naming it in its ``tools:``):
        register it with ``tool.register(runtime)``. Each call runs the
        agent on the call's ``message`` as a workflow of its own on that
        runtime, keyed by the call's idempotency key, so a call sent again
        after a crash attaches to the run it began instead of starting
        another. (An agent of a Python workflow calls another agent by
        having it in its ``tools=``: no wrapper needed.)"""
        return _AgentTool(self, name or self.name, description)

    def __repr__(self) -> str:
        return f"jamjet.Agent({self.name!r}, model={self.model.key!r}, strategy={self.strategy!r})"


class _AgentTool(Tool):
    """An :class:`Agent` as a function tool (:meth:`Agent.as_tool`)."""

    def __init__(self, agent: Agent, name: str, description: str | None) -> None:
        self.agent = agent

        async def ask(message: str) -> str:
            """Ask the agent.

            Args:
                message: What to ask it, with everything it needs to know.
            """
            return (await agent.run(message)).text

        about = description or agent.description or f"Ask the agent `{agent.name}`: {agent.instructions}"
        super().__init__(ask, name=name, description=about[:1000])

    def handler(self, runtime: Runtime | None = None) -> Handler:
        rt = runtime or memory_runtime()
        agent = self.agent

        async def ask(args: Any) -> str:
            in_tool.set(True)
            message = self._bind(args)["message"]
            call = current_call.get()
            key = f"as-tool/{call.idempotency_key}" if call is not None else None
            return (await agent.run(message, key=key, runtime=rt)).text

        return Handler(ask, f"agent `{agent.name}` as the tool `{self.name}`", json.loads, lambda _a, out: json.dumps(out))


def _failure_class(events: list[dict[str, Any]]) -> str | None:
    for rec in reversed(events):
        ev = rec.get("event")
        if isinstance(ev, dict) and "NodeFailed" in ev:
            cls = ev["NodeFailed"].get("class")
            # The journal writes the class's variant name: BudgetExceeded.
            return re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower() if isinstance(cls, str) else None
    return None


def _calls_of(events: list[dict[str, Any]], node: str = _NODE) -> list[dict[str, Any]]:
    """The journaled calls of ``node``'s last visit, in order."""
    out: dict[int, dict[str, Any]] = {}
    visit = None
    for rec in events:
        ev = rec.get("event")
        if not (isinstance(ev, dict) and "Call" in ev):
            continue
        c = ev["Call"]
        if c.get("node") != node:
            continue
        if visit is not None and c.get("visit") != visit:
            out.clear()
        visit = c.get("visit")
        call = c["call"]
        out[call["n"]] = {
            "n": call["n"],
            "kind": call["kind"],
            "name": call["name"],
            "request": call.get("request"),
            "response": call.get("response"),
            "usage": call.get("usage"),
        }
    return [out[n] for n in sorted(out)]


def _tool_calls(calls: list[dict[str, Any]]) -> list[ToolCall]:
    out = []
    for c in calls:
        if c["kind"] != "tool":
            continue
        req = c["request"] if isinstance(c["request"], dict) else {}
        res = c["response"]
        out.append(
            ToolCall(
                name=c["name"],
                arguments=req.get("arguments"),
                result=res if isinstance(res, str) else json.dumps(res),
                id=req.get("id"),
            )
        )
    return out


class _Bundle:
    """What a set of agents needs in a workflow: its ``agents:``,
    ``models:`` and ``mcp: servers:`` entries and its Python tools."""

    def __init__(self, models: dict[str, dict[str, Any]] | None = None) -> None:
        self.models: dict[str, dict[str, Any]] = dict(models or {})
        self.agents: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, Agent] = {}
        self.mcp: dict[str, dict[str, Any]] = {}
        self.tools: dict[str, Tool] = {}

    def model(self, m: Model) -> str:
        """The key of ``m``'s entry in ``models:`` (another key when its
        name is taken by another entry)."""
        entry, key, n = m.entry(), m.key, 1
        while key in self.models and self.models[key] != entry:
            n += 1
            key = f"{m.key}-{n}"
        self.models[key] = entry
        return key

    def add(self, agent: Agent) -> None:
        """``agent``, and the agents it calls."""
        pending = [agent]
        while pending:
            a = pending.pop()
            seen = self.objects.get(a.name)
            if seen is a:
                continue
            if seen is not None:
                raise ValidationError(f"two different agents are both named `{a.name}`: give them different names")
            self.objects[a.name] = a
            for t in a.tools:
                if isinstance(t, Tool):
                    other = self.tools.get(t.name)
                    if other is not None and other is not t and other.fn is not t.fn:
                        raise ValidationError(
                            f"two different tools are both named `{t.name}` (agent `{a.name}`): rename one with "
                            "@jamjet.tool(name=...)"
                        )
                    self.tools[t.name] = t
                elif isinstance(t, MCPTool):
                    entry = t.server.entry()
                    if self.mcp.get(t.server.name, entry) != entry:
                        raise ValidationError(f"two different MCP servers are both named `{t.server.name}`")
                    self.mcp[t.server.name] = entry
            pending.extend(reversed(a.agents_called()))
            self.agents[a.name] = a._entry(self)


def _named_by(fn: Callable[..., Any]) -> list[Agent]:
    """The agents a function's code names directly: the globals it reads
    and its closure's variables (nested functions' too)."""
    found: list[Agent] = []
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return found
    glob = getattr(fn, "__globals__", {})
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:  # not yet assigned
            continue
        if isinstance(value, Agent):
            found.append(value)
    stack = [code]
    while stack:
        c = stack.pop()
        for name in c.co_names:
            value = glob.get(name)
            if isinstance(value, Agent):
                found.append(value)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return found


def declare_agents(wf: Workflow) -> None:
    """Write into ``wf`` (its ``agents``, ``models``, ``mcp`` and extra
    functions) the agents its steps run: those given in ``agents=`` and
    those its step functions name (see the module docs)."""
    agents: list[Agent] = list(getattr(wf, "_agent_objects", ()))
    for n in wf._nodes:
        fn = getattr(n, "fn", None)
        if fn is not None:
            agents.extend(_named_by(fn))
    if not agents:
        return
    bundle = _Bundle(wf.models)
    for a in agents:
        bundle.add(a)
    for name, entry in bundle.agents.items():
        if name in wf.agents and wf.agents[name] != entry and name not in _declared(wf):
            raise ValidationError(f"workflow `{wf.name}` has an agent `{name}` of its own and another jamjet.Agent of that name")
    wf.models.update(bundle.models)
    wf.agents.update(bundle.agents)
    wf.mcp.update(bundle.mcp)
    wf._declared_agents = set(bundle.agents)  # type: ignore[attr-defined]
    for t in bundle.tools.values():
        wf._extra_functions[t.name] = (t.handler(wf.runtime), t.description, t.parameters)


def _declared(wf: Workflow) -> set[str]:
    return getattr(wf, "_declared_agents", set())

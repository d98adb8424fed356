"""The decorator API: a class whose ``@node`` methods are the steps of a
workflow over a dict-like :class:`State`.

::

    from jamjet import workflow, node, State

    @workflow(id="data-processor", version="0.1.0")
    class DataProcessor:
        @node(start=True)
        async def process(self, state: State) -> State:
            return {"analysis": f"{len(state['rows'])} rows"}

        @node
        async def report(self, state: State) -> State:
            response = await self.model(model="claude-sonnet-4-6", prompt=f"Report on {state['analysis']}")
            return {"report": response.text}

    result = DataProcessor().run_sync({"rows": [1, 2, 3]})

It compiles to the same IR as a YAML file or a :class:`jamjet.Workflow`:
each node is a ``type: function`` node calling ``{id}/{node}``, in
declaration order from the start node unless routed (``@node(next=...)``).
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter

from ._dict_state import DictWorkflow, State
from ._runtime import Runtime, call_async, current_call
from ._schema import _type_of, state_schema
from .errors import JamjetError, ValidationError
from .models import Model, ModelReply, _resolve_model
from .workflow import RunResult

__all__ = ["workflow", "node", "State", "workflow_of"]

C = TypeVar("C", bound=type)

_MARK = "__jamjet_node__"


@dataclass
class _NodeSpec:
    name: str | None
    start: bool
    next: Mapping[str, Callable[[Any], bool]] | str | None
    retry: int | Mapping[str, Any] | None
    timeout: float | None
    human_approval: bool | str
    end: bool = False


@overload
def node(fn: Callable[..., Any], /) -> Callable[..., Any]: ...
@overload
def node(
    *,
    start: bool = False,
    name: str | None = None,
    next: Mapping[str, Callable[[Any], bool]] | str | None = None,
    retry: int | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    human_approval: bool | str = False,
    end: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...


def node(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    start: bool = False,
    name: str | None = None,
    next: Mapping[str, Callable[[Any], bool]] | str | None = None,
    retry: int | Mapping[str, Any] | None = None,
    timeout: float | None = None,
    human_approval: bool | str = False,
    end: bool = False,
) -> Any:
    """Mark a method of a ``@workflow`` class as a node: ``(self, state) ->
    patch`` (a dict of the keys it changes, or ``None``), sync or async.

    ``start=True`` makes it the start node (default: the first declared).
    Nodes run in declaration order unless routed, as ``Workflow.step``
    routes: ``next="report"``, or ``next={"report": lambda s: s["ok"],
    "process": lambda s: not s["ok"]}`` goes to the first node whose
    condition holds on the state after this node (none: the next
    declared). ``end=True``: the workflow ends after this node (a node
    reached by routing, declared before others). ``retry=``, ``timeout=``
    (seconds) and ``human_approval=`` as for ``Workflow.step``."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise ValidationError(f"@node marks a method, not {f!r}")
        if end and next is not None:
            raise ValidationError(f"@node `{name or f.__name__}`: end=True or next=, not both")
        setattr(f, _MARK, _NodeSpec(name, start, next, retry, timeout, human_approval, end))
        return f

    return mark(fn) if fn is not None else mark


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def _nodes_of(cls: type) -> list[tuple[str, Callable[..., Any], _NodeSpec]]:
    """The ``@node`` methods of ``cls`` and its bases, bases' first, each in
    declaration order (a subclass's method of the same name replaces it)."""
    found: dict[str, tuple[str, Callable[..., Any], _NodeSpec]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            spec = getattr(fn, _MARK, None)
            if isinstance(spec, _NodeSpec):
                found[attr] = (attr, fn, spec)
            elif attr in found:
                del found[attr]
    return list(found.values())


def _type_name(t: Any, key: str, where: str) -> str:
    """A state key's type as the runtime writes it (``str``, ``list[int]``,
    ``optional[str]``, ``any``), from a Python type or a type written so."""
    if isinstance(t, str):
        return t
    if t is Any or t is object:
        return "any"
    try:
        schema = TypeAdapter(t).json_schema()
    except Exception as e:
        raise ValidationError(f"{where}: state key `{key}`: {t!r} is not a type jamjet can store ({e})") from None
    return _type_of(schema, schema)


def _schema_from(state: Any, where: str) -> dict[str, str]:
    """``@workflow(state=...)``: a Pydantic model, or ``{key: type}``."""
    if isinstance(state, type) and issubclass(state, BaseModel):
        return state_schema(state)
    if isinstance(state, Mapping):
        return {str(k): _type_name(t, str(k), where) for k, t in state.items()}
    raise ValidationError(
        f"{where}: state= is a dict of the state's keys and their types ({{'rows': list, 'report': str}}) or a "
        f"Pydantic model, not {state!r}"
    )


class _Keys(ast.NodeVisitor):
    """The state keys a node function reads and returns: ``state["k"]``,
    ``state.get("k")``, ``state.k``, and the string keys of the dicts it
    returns (``return {"k": ...}``, ``return dict(k=...)``, or a dict
    literal assigned to a name it returns)."""

    def __init__(self, param: str) -> None:
        self.param = param
        self.keys: set[str] = set()
        self.dicts: dict[str, set[str]] = {}
        self.returned: set[str] = set()

    def _literal_keys(self, value: ast.AST | None) -> set[str] | None:
        if isinstance(value, ast.Dict):
            return {k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
            return {kw.arg for kw in value.keywords if kw.arg}
        return None

    def visit_Subscript(self, n: ast.Subscript) -> None:
        if isinstance(n.value, ast.Name) and n.value.id == self.param:
            if isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
                self.keys.add(n.slice.value)
        self.generic_visit(n)

    def visit_Attribute(self, n: ast.Attribute) -> None:
        if isinstance(n.value, ast.Name) and n.value.id == self.param and not hasattr(dict, n.attr):
            self.keys.add(n.attr)
        self.generic_visit(n)

    def visit_Call(self, n: ast.Call) -> None:
        f = n.func
        if (
            isinstance(f, ast.Attribute)
            and isinstance(f.value, ast.Name)
            and f.value.id == self.param
            and f.attr in ("get", "setdefault", "pop")
            and n.args
            and isinstance(n.args[0], ast.Constant)
            and isinstance(n.args[0].value, str)
        ):
            self.keys.add(n.args[0].value)
        self.generic_visit(n)

    def visit_Assign(self, n: ast.Assign) -> None:
        keys = self._literal_keys(n.value)
        if keys is not None:
            for t in n.targets:
                if isinstance(t, ast.Name):
                    self.dicts.setdefault(t.id, set()).update(keys)
        self.generic_visit(n)

    def visit_Return(self, n: ast.Return) -> None:
        keys = self._literal_keys(n.value)
        if keys is not None:
            self.keys.update(keys)
        elif isinstance(n.value, ast.Name):
            self.returned.add(n.value.id)
        self.generic_visit(n)

    def found(self) -> set[str]:
        out = set(self.keys)
        for name in self.returned:
            out.update(self.dicts.get(name, set()))
        return out


def _inferred_keys(fn: Callable[..., Any], where: str) -> set[str]:
    """The state keys node ``fn`` reads or returns (see :class:`_Keys`)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError) as e:
        raise ValidationError(
            f"{where}: cannot read the source of node `{fn.__name__}` to find the state's keys ({e}); "
            f"declare them: @workflow(state={{'key': type, ...}})"
        ) from None
    func = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if func is None:
        return set()
    params = [a.arg for a in func.args.posonlyargs + func.args.args]
    param = params[1] if len(params) > 1 else (params[0] if params else None)
    if param is None:
        return set()
    visitor = _Keys(param)
    for stmt in func.body:
        visitor.visit(stmt)
    return visitor.found()


def _model_entry(models: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The configuration a node's ``self.model(model=name)`` is sent with:
    the class's ``models=`` entry for ``name``, else ``name`` resolved as
    the CLI resolves a model id."""
    if isinstance(name, Model):
        return name.entry()
    entry = (models or {}).get(name)
    if entry is None:
        return _resolve_model(name)
    if isinstance(entry, (str, Model)):
        return _resolve_model(entry)
    if not isinstance(entry, Mapping) or "provider" not in entry:
        raise ValidationError(
            f"models={{{name!r}: ...}}: an entry is a dict like a workflow's `models:` entry "
            f"(provider, model, base_url, api_key_env), or another model's name"
        )
    out = dict(entry)
    out.setdefault("model", name)
    defaults = _resolve_model("claude-x" if out["provider"] == "anthropic" else "gpt-x")
    if "base_url" not in out:
        out["base_url"] = defaults["base_url"]
        out.setdefault("api_key_env", defaults["api_key_env"])
    else:
        out.setdefault("api_key_env", None)
    return out


class _ClassWorkflow(DictWorkflow):
    """The workflow of a ``@workflow`` class: its steps call the node
    methods of the instance that runs it (the last one that did; one made
    with no arguments when none did yet, as after a restart)."""

    def __init__(self, cls: type, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.cls = cls
        self.owner: Any = None
        self.models_config: dict[str, Any] | None = None
        self.ends: set[str] = set()

    def document(self) -> dict[str, Any]:
        doc = super().document()
        for name in self.ends:
            doc["nodes"][name].pop("next", None)
        return doc

    def instance(self) -> Any:
        if self.owner is None:
            try:
                self.owner = self.cls()
            except TypeError as e:
                raise JamjetError(
                    f"workflow `{self.name}`: no instance of `{self.cls.__name__}` runs it here, and one cannot be "
                    f"made without arguments ({e}): run it from an instance first"
                ) from None
        return self.owner

    def bind(self, owner: Any) -> _ClassWorkflow:
        self.owner = owner
        return self

    def dispatcher(self, attr: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            async def call_async_node(state: State) -> Any:
                return await getattr(self.instance(), attr)(state)

            call_async_node.__name__ = attr
            return call_async_node

        def call_node(state: State) -> Any:
            return getattr(self.instance(), attr)(state)

        call_node.__name__ = attr
        return call_node


def _wf(target: Any) -> _ClassWorkflow:
    cls = target if isinstance(target, type) else type(target)
    wf = getattr(cls, "__jamjet_workflow__", None)
    if not isinstance(wf, _ClassWorkflow):
        raise JamjetError(f"`{cls.__name__}` is not a @workflow class")
    return wf if isinstance(target, type) else wf.bind(target)


class _Either:
    """A method that works on the class and on an instance alike."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, owner: type) -> Callable[..., Any]:
        target = obj if obj is not None else owner
        return lambda *a, **k: self.fn(target, *a, **k)


# ----- what a @workflow class gets (unless it defines the name itself) -----


def _run_sync(self: Any, state: Any = None, *, key: str | None = None) -> RunResult[State]:
    """Run the workflow to its end (or until it parks: ``result.status ==
    "waiting"``) from ``state`` (a dict); ``key`` attaches to the run with
    that key if there is one (resuming it where it stopped)."""
    return _wf(self).run_sync(state, key=key)


async def _run(self: Any, state: Any = None, *, key: str | None = None) -> RunResult[State]:
    """The async form of ``run_sync``."""
    return await _wf(self).run(state, key=key)


def _resume(self: Any, execution_id: str) -> RunResult[State]:
    """Wait for an execution of this workflow to end or park again."""
    return _wf(self).resume(execution_id)


def _signal(self: Any, execution_id: str, key: str, payload: Any = None, *, wait: bool = True) -> Any:
    """Deliver the event ``key`` with ``payload`` to a waiting execution."""
    return _wf(self).signal(execution_id, key, payload, wait=wait)


def _approve(self: Any, execution_id: str, decision: str | bool = "approved", **kwargs: Any) -> Any:
    """Decide the approval an execution waits on."""
    return _wf(self).approve(execution_id, decision, **kwargs)


def _cancel(self: Any, execution_id: str, reason: str = "cancelled from Python") -> None:
    """Cancel an execution of this workflow."""
    _wf(self).cancel(execution_id, reason)


def _compile(target: Any) -> Any:
    """The workflow compiled by the runtime's compiler (``jamjet._native.Workflow``)."""
    return _wf(target).compile()


def _to_yaml(target: Any) -> str:
    """The workflow's YAML document (as JSON, which is YAML)."""
    return _wf(target).to_yaml()


def _document(target: Any) -> dict[str, Any]:
    """The workflow's YAML document, as a dict."""
    return _wf(target).document()


def _register(target: Any, runtime: Runtime | None = None) -> str:
    """Register the workflow (and its nodes) with ``runtime`` (default: its
    own), as a server offers it; returns the content hash."""
    return _wf(target).register(runtime)


async def _model(
    self: Any,
    model: str,
    prompt: str,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> ModelReply:
    """Ask ``model`` (a name: ``"gpt-4o-mini"``, ``"claude-sonnet-4-6"``, or
    an entry of the class's ``models=``) for ``prompt``, durably: the call
    is journaled in the node's step as it completes, so when the node runs
    again (a retry, a rerun after a crash) the journaled reply is returned
    and the model is not called again. Only inside a node while it runs."""
    call, config = _model_call(self, model)
    text = await call_async(
        lambda cb: call.model(model, config, prompt, system, temperature, max_tokens, callback=cb)
    )
    return _reply(model, text)


def _model_sync(
    self: Any,
    model: str,
    prompt: str,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
) -> ModelReply:
    """``self.model`` for a sync node (it blocks the node's thread)."""
    call, config = _model_call(self, model)
    return _reply(model, call.model(model, config, prompt, system, temperature, max_tokens))


def _model_call(self: Any, model: str) -> tuple[Any, str]:
    wf = _wf(type(self))
    call = current_call.get()
    if call is None:
        raise JamjetError(
            f"self.model(model={model!r}) is a durable call inside a node of `{wf.name}`: call it from a @node "
            f"method while the workflow runs"
        )
    return call, json.dumps(_model_entry(wf.models_config, model))


def _reply(model: str, text: str) -> ModelReply:
    data = json.loads(text)
    return ModelReply(text=data["text"], model=model, usage=data["usage"], raw=data["raw"])


_ATTACHED: dict[str, Any] = {
    "run_sync": _run_sync,
    "run": _run,
    "resume": _resume,
    "signal": _signal,
    "approve": _approve,
    "cancel": _cancel,
    "compile": _Either(_compile),
    "to_yaml": _Either(_to_yaml),
    "document": _Either(_document),
    "register": _Either(_register),
    "model": _model,
    "model_sync": _model_sync,
}


def workflow(
    id: str | None = None,
    *,
    version: str = "0.1.0",
    state: Mapping[str, Any] | type[BaseModel] | None = None,
    store: str | os.PathLike[str] | None = None,
    runtime: Runtime | None = None,
    models: Mapping[str, Any] | None = None,
    max_steps: int | None = None,
    timeout: float | None = None,
) -> Callable[[C], C]:
    """Make a class a workflow whose steps are its ``@node`` methods.

    ``id`` defaults to the class name in kebab-case. ``state={"rows": list,
    "report": str}`` (or a Pydantic model) declares the state's keys and
    types; without it, the keys are those the nodes read (``state["k"]``,
    ``state.get("k")``) and return in dict literals, typed ``any``.
    ``store=".jamjet"`` journals on sled (durable across crashes; run again
    with the same ``key`` to resume), ``runtime=`` shares a
    :class:`jamjet.Runtime`; neither: in memory. ``models=`` names models
    for ``self.model`` (``{"local": {"provider": "openai", "model":
    "llama3.2", "base_url": "http://127.0.0.1:11434/v1"}}``).

    The class gets ``run_sync``, ``run``, ``resume``, ``signal``,
    ``approve``, ``cancel``, ``compile``, ``to_yaml``, ``document``,
    ``register``, and ``self.model`` / ``self.model_sync`` for durable model
    calls inside a node (a name the class defines itself is left alone)."""

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise ValidationError(f"@workflow decorates a class, not {cls!r}")
        name = id or _kebab(cls.__name__)
        where = f"@workflow `{name}` ({cls.__name__})"
        found = _nodes_of(cls)
        if not found:
            raise ValidationError(f"{where} has no @node methods")
        starts = [spec.name or attr for attr, _, spec in found if spec.start]
        if len(starts) > 1:
            raise ValidationError(f"{where}: {len(starts)} nodes are marked start=True ({', '.join(starts)}): one may be")
        if state is not None:
            schema = _schema_from(state, where)
        else:
            keys: set[str] = set()
            for _, fn, _ in found:
                keys |= _inferred_keys(fn, where)
            schema = {k: "any" for k in sorted(keys)}
        wf = _ClassWorkflow(
            cls,
            name,
            schema=schema,
            start=starts[0] if starts else None,
            version=version,
            store=store,
            runtime=runtime,
            max_steps=max_steps,
            timeout=timeout,
        )
        wf.models_config = dict(models) if models else None
        for attr, fn, spec in found:
            wf.step(
                name=spec.name or attr,
                next=spec.next,
                retry=spec.retry,
                timeout=spec.timeout,
                human_approval=spec.human_approval,
            )(wf.dispatcher(attr, fn))
            if spec.end:
                wf.ends.add(spec.name or attr)
        cls.__jamjet_workflow__ = wf  # type: ignore[attr-defined]
        for attr, impl in _ATTACHED.items():
            if not hasattr(cls, attr):
                setattr(cls, attr, impl)
        if not hasattr(cls, "workflow"):
            cls.workflow = wf  # type: ignore[attr-defined]
        return cls

    return decorate


def workflow_of(target: Any) -> DictWorkflow:
    """The :class:`jamjet.Workflow` a ``@workflow`` class (or instance) runs as."""
    return _wf(target)


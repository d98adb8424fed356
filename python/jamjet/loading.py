"""YAML from Python and Python from YAML.

- :func:`load` reads a YAML workflow whose ``type: function`` nodes call
  Python functions (``functions={"score": score}``) and runs it in this
  process, durably with ``store=``.
- :func:`run_child` runs a YAML workflow (or any workflow) from inside a
  Python step as a durable sub-workflow: its start is keyed by the step,
  so a step run again after a crash attaches to the child it started
  instead of starting another; its result is journaled in the step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from . import _native
from ._dict_state import DictWorkflow, State, as_input, jsonable
from ._runtime import Runtime, call_async, current_call, current_scope, memory_runtime
from ._steps import Handler
from .errors import StepFailed, ValidationError
from .workflow import Workflow

__all__ = ["load", "YamlWorkflow", "run_child", "run_child_sync"]


def _function_names(ir: Mapping[str, Any]) -> list[str]:
    """The functions the ``type: function`` nodes of an IR call, its
    sub-workflows' included, sorted."""
    names: set[str] = set()
    for node in (ir.get("nodes") or {}).values():
        kind = node.get("kind") or {}
        if kind.get("type") == "function":
            names.add(kind["function"])
        elif kind.get("type") == "workflow" and isinstance(kind.get("workflow"), Mapping):
            names.update(_function_names(kind["workflow"]))
    return sorted(names)


def _function_handler(name: str, fn: Callable[..., Any]) -> Handler:
    """How a Python function answers a ``type: function`` node: called with
    the node's input (its rendered ``input:``, or the state, as a
    :class:`State`); what it returns (a dict, a Pydantic model, any JSON
    value for a node with ``output_key``, or None) is the node's result."""

    def read(text: str) -> Any:
        data = json.loads(text)
        return State(data) if isinstance(data, dict) else data

    def write(_arg: Any, out: Any) -> str:
        if isinstance(out, BaseModel):
            return json.dumps(out.model_dump(mode="json"))
        return json.dumps(out, default=jsonable)

    return Handler(fn, f"function `{name}`", read, write)


class YamlWorkflow(DictWorkflow):
    """A workflow read from a YAML file (:func:`load`): run it with
    :meth:`run_sync` / :meth:`run` from a dict state, like any
    :class:`jamjet.Workflow`; its ``type: function`` nodes call the Python
    functions it was given."""

    def __init__(
        self,
        compiled: _native.Workflow,
        *,
        path: str | None,
        functions: Mapping[str, Callable[..., Any]],
        store: str | os.PathLike[str] | None,
        runtime: Runtime | None,
    ) -> None:
        ir = json.loads(compiled.ir_json())
        schema = {k: "any" for k in (ir.get("state_schema") or {}).get("fields", {})}
        super().__init__(compiled.id, schema=schema, version=compiled.version, store=store, runtime=runtime)
        self.path = path
        self.ir: dict[str, Any] = ir
        self.functions: dict[str, Callable[..., Any]] = dict(functions)
        self._compiled = compiled

    def compile(self) -> _native.Workflow:
        """The compiled workflow (``.content_hash()``, ``.ir_json()``, ``.source``)."""
        assert self._compiled is not None
        return self._compiled

    def content_hash(self) -> str:
        """The workflow's identity: equal IR, equal hash."""
        return self.compile().content_hash()

    def document(self) -> dict[str, Any]:
        """The compiled IR, as a dict (the file itself: :meth:`to_yaml`)."""
        return dict(self.ir)

    def to_yaml(self) -> str:
        """The YAML source the workflow was read from."""
        return self.compile().source

    def function_names(self) -> list[str]:
        """The functions its ``type: function`` nodes call (sorted)."""
        return _function_names(self.ir)

    def missing_functions(self, runtime: Runtime | None = None) -> list[str]:
        """The functions its nodes call that it was not given and that
        ``runtime`` (default: its own) has not registered."""
        rt = runtime or self.runtime
        return [n for n in self.function_names() if n not in self.functions and not rt.has_function(n)]

    def _input(self, state: Any) -> str:
        return json.dumps(as_input(state, f"workflow `{self.name}`"))

    def _ensure(self, runtime: Runtime) -> _native.Workflow:
        compiled = self.compile()
        if id(runtime) not in self._registered_on:
            missing = self.missing_functions(runtime)
            if missing:
                where = f" ({self.path})" if self.path else ""
                given = ", ".join(f"`{n}`" for n in self.functions) or "none"
                raise ValidationError(
                    f"workflow `{self.name}`{where} calls {len(missing)} function(s) it was not given: "
                    f"{', '.join(f'`{n}`' for n in missing)} (given: {given}); pass them: "
                    f"jamjet.load(..., functions={{{', '.join(repr(n) + ': ...' for n in missing)}}})"
                )
            for fname, fn in self.functions.items():
                runtime.add_function(fname, _function_handler(fname, fn))
            self._registered_on.add(id(runtime))
        return compiled

    def __repr__(self) -> str:
        return f"jamjet.YamlWorkflow({self.name!r}, path={self.path!r})"


def _check_functions(functions: Mapping[str, Any] | None) -> dict[str, Callable[..., Any]]:
    if functions is None:
        return {}
    if not isinstance(functions, Mapping):
        raise ValidationError(f"functions= is a dict of names to Python functions, not {type(functions).__name__}")
    for name, fn in functions.items():
        if not isinstance(name, str) or not name:
            raise ValidationError(f"functions=: a function's name is a non-empty string, not {name!r}")
        if not callable(fn):
            raise ValidationError(f"functions={{{name!r}: ...}}: {fn!r} is not callable")
    return dict(functions)


def load(
    path: str | os.PathLike[str],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    store: str | os.PathLike[str] | None = None,
    runtime: Runtime | None = None,
) -> YamlWorkflow:
    """Read the YAML workflow at ``path`` (compiled by the runtime's
    compiler; errors are :class:`jamjet.ValidationError` whose ``findings``
    give each file, line, column and message). Its ``type: function`` nodes
    call the Python functions of ``functions`` by name: ``fn(input)``, sync
    or async, with the node's rendered ``input:`` (or the state, a
    :class:`State`), returning the node's result (a dict merged into the
    state, or any JSON value under the node's ``output_key``). A function
    it calls that is not given is an error when it is run or registered,
    naming each missing one.

    ``store=".jamjet"`` journals on sled (durable; run again with the same
    ``key`` to resume), ``runtime=`` shares a :class:`jamjet.Runtime`;
    neither: in memory."""
    if store is not None and runtime is not None:
        raise ValidationError("give jamjet.load store= or runtime=, not both")
    fns = _check_functions(functions)
    compiled = _native.compile_file(os.fspath(path))
    return YamlWorkflow(compiled, path=os.fspath(path), functions=fns, store=store, runtime=runtime)


# ----- sub-workflows from a step -----

_loaded: dict[tuple[str, float, int], _native.Workflow] = {}


def _child(workflow: Any, functions: Mapping[str, Callable[..., Any]] | None) -> Workflow:
    """What ``run_child`` runs: a path (loaded, compiled once per file
    version), a :class:`YamlWorkflow`, any :class:`jamjet.Workflow`, or a
    ``@workflow`` class."""
    if isinstance(getattr(workflow, "__jamjet_workflow__", None), Workflow):
        workflow = workflow.__jamjet_workflow__  # a @workflow class
    if isinstance(workflow, Workflow):
        if functions and isinstance(workflow, YamlWorkflow):
            workflow.functions.update(_check_functions(functions))
            workflow._registered_on.clear()
        return workflow
    if isinstance(workflow, (str, os.PathLike)):
        path = os.path.realpath(os.fspath(workflow))
        try:
            st = os.stat(path)
        except OSError as e:
            raise ValidationError(f"cannot read workflow file {os.fspath(workflow)}: {e}") from None
        cache = (path, st.st_mtime, st.st_size)
        compiled = _loaded.get(cache)
        if compiled is None:
            compiled = _loaded[cache] = _native.compile_file(path)
        fns = _check_functions(functions)
        return YamlWorkflow(compiled, path=os.fspath(workflow), functions=fns, store=None, runtime=memory_runtime())
    raise ValidationError(
        f"run_child runs a workflow file's path, a jamjet.load(...) workflow or a jamjet.Workflow, not {workflow!r}"
    )


def _settled(child: Workflow, report: str, parent: str) -> dict[str, Any]:
    r = json.loads(report)
    if r["status"] == "completed":
        data = dict(r["state"])
        data.pop("_route", None)
        return data
    if r["status"] == "waiting":
        what = ", ".join(f"{w['kind']} at `{w['node']}`" for w in r.get("waiting", [])) or "something"
        raise StepFailed(
            f"{parent}: child execution {r['id']} of `{child.name}` waits for {what}; a step cannot wait for it: "
            f"decide or signal it, and the step's next attempt attaches to it again (or run the child as a "
            f"`type: workflow` node)",
            execution_id=r["id"],
            node=r.get("node"),
        )
    raise StepFailed(
        f"{parent}: child execution {r['id']} of `{child.name}` {r['status']}"
        f"{' at step `' + r['node'] + '`' if r.get('node') else ''}: {r.get('error') or 'no message'}",
        execution_id=r["id"],
        node=r.get("node"),
    )


def _prepare(
    workflow: Any, input: Any, functions: Any, name: str | None, runtime: Runtime | None
) -> tuple[Any, Workflow, Any, str, str, str | None]:
    """The child, the runtime it runs on (the step's, or ``runtime``), its
    input as JSON, and inside a step: the call, the piece's name and the
    child's key (the step's idempotency key and the child's number in it)."""
    child = _child(workflow, functions)
    call = current_call.get()
    scope = current_scope.get()
    rt = runtime or (scope.runtime if scope is not None else None) or child.runtime
    child._ensure(rt)
    text = child._input(input)
    if call is None or scope is None:
        return None, child, rt.native, "", text, None
    scope.children += 1
    key = f"{call.idempotency_key}/child/{scope.children}"
    return call, child, rt.native, name or f"child:{child.name}", text, key


async def run_child(
    workflow: Any,
    input: Any = None,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    name: str | None = None,
    runtime: Runtime | None = None,
) -> State:
    """Run ``workflow`` (a YAML file's path, a :func:`load`-ed workflow, or a
    :class:`jamjet.Workflow`) on ``input`` from inside a step, as a durable
    sub-workflow, and return its final state (a :class:`State`).

    The child is an execution of its own in the step's runtime (``inspect``
    shows it), started with a key made of the step's idempotency key and
    its number in the step, so when the step runs again (a retry, a rerun
    after a crash) it attaches to the child it started, resuming it if it
    was interrupted, instead of starting another; once it ends, its final
    state is journaled in the step (a durable piece, ``name``: default
    ``child:{id}``) and read back from then on. ``functions=`` gives a file's
    ``type: function`` nodes their Python functions. Outside a step it
    simply runs the child."""
    call, child, native, piece, text, key = _prepare(workflow, input, functions, name, runtime)
    compiled = child.compile()
    if call is None:
        report = await call_async(lambda cb: native.run(compiled, text, None, callback=cb))
        return State(_settled(child, report, "run_child"))
    kind, value = await call_async(lambda cb: call.piece(piece, callback=cb))
    if kind == "done":
        return State(json.loads(value))
    parent = f"step `{call.node_id}` of execution {call.execution_id}"
    try:
        report = await call_async(lambda cb: native.run(compiled, text, key, callback=cb))
        state = _settled(child, report, parent)
    except BaseException as e:
        await call_async(lambda cb: value.finish(error=f"{type(e).__name__}: {e}", callback=cb))
        raise
    await call_async(lambda cb: value.finish(json.dumps(state), callback=cb))
    return State(state)


def run_child_sync(
    workflow: Any,
    input: Any = None,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    name: str | None = None,
    runtime: Runtime | None = None,
) -> State:
    """:func:`run_child` for a sync step (it blocks the step's thread)."""
    call, child, native, piece, text, key = _prepare(workflow, input, functions, name, runtime)
    compiled = child.compile()
    if call is None:
        return State(_settled(child, native.run(compiled, text, None), "run_child"))
    kind, value = call.piece(piece)
    if kind == "done":
        return State(json.loads(value))
    parent = f"step `{call.node_id}` of execution {call.execution_id}"
    try:
        state = _settled(child, native.run(compiled, text, key), parent)
    except BaseException as e:
        value.finish(error=f"{type(e).__name__}: {e}")
        raise
    value.finish(json.dumps(state))
    return State(state)


"""Workflows over a dict-like state (the decorator API's, a YAML
workflow's): :class:`State`, and the :class:`Workflow` whose runs take and
return one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ._steps import to_json
from .errors import ValidationError
from .workflow import ROUTE_KEY, Workflow, _Step

__all__ = ["State"]


class State(dict[str, Any]):
    """The state of a decorator-API or YAML workflow: a ``dict`` (read it as
    ``state["analysis"]`` or ``state.get("analysis")``; its keys read as
    attributes too, ``state.analysis``). A node returns a patch: a dict of
    the keys it changes, merged into the state by the runtime."""

    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            have = ", ".join(f"`{k}`" for k in self) or "none"
            raise AttributeError(f"the state has no key `{key}` (its keys: {have})") from None


def jsonable(value: Any) -> Any:
    """``json.dumps``' fallback: a Pydantic model, a dataclass, a set..."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        return to_json(value)
    except Exception:
        raise TypeError(f"{type(value).__name__} {value!r:.60} is not JSON data") from None


def as_input(state: Any, what: str) -> dict[str, Any]:
    """An initial state (a dict, a :class:`State`, a Pydantic model, or
    ``None``) as JSON data."""
    if state is None:
        return {}
    if isinstance(state, BaseModel):
        return state.model_dump(mode="json")
    if not isinstance(state, Mapping):
        raise ValidationError(f"{what}: the initial state is a dict of its keys, not {type(state).__name__}")
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise ValidationError(f"{what}: the state's keys are strings, not {bad[0]!r}")
    return json.loads(json.dumps(dict(state), default=jsonable))


class DictWorkflow(Workflow):
    """A :class:`Workflow` whose state is a :class:`State` (a dict checked
    against a ``state_schema`` of the runtime's types) instead of a Pydantic
    model; its steps (``_Step``) take a State and return a patch."""

    def __init__(self, name: str, *, schema: dict[str, str], start: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._schema = dict(schema)
        self._start = start

    def _state_schema(self) -> dict[str, Any]:
        return dict(self._schema)

    def _start_node(self) -> Any:
        if self._start is not None:
            for n in self._nodes:
                if n.name == self._start:
                    return n
        return self._nodes[0]

    def _routed(self) -> bool:
        return any(isinstance(n, _Step) and n.routes for n in self._nodes)

    def _input(self, state: Any) -> str:
        data = as_input(state, f"workflow `{self.name}`")
        unknown = [k for k in data if k not in self._schema]
        if unknown:
            raise ValidationError(
                f"workflow `{self.name}`: the initial state has {_keys(unknown)}, which its state does not declare "
                f"(its keys: {_keys(self._schema) or 'none'}); declare them: @workflow(state={{...}})"
            )
        if self._routed():
            data[ROUTE_KEY] = None
        return json.dumps(data)

    def _read_state(self, data: dict[str, Any], execution_id: str) -> Any:
        return State(data)

    def _handler(self, step: _Step) -> Any:
        from ._steps import BadResult, Handler

        keys = set(self._schema)
        routes = step.routes
        name = self.name

        def read(text: str) -> State:
            data = json.loads(text)
            data.pop(ROUTE_KEY, None)
            return State(data)

        def write(before: State, out: Any) -> str:
            if out is None:
                patch: dict[str, Any] = {}
            elif isinstance(out, BaseModel):
                patch = out.model_dump(mode="json")
            elif isinstance(out, Mapping):
                patch = dict(out)
            else:
                raise BadResult(
                    f"returned {type(out).__name__} {out!r:.80}: a node returns a dict of the state keys it "
                    f"changes (or None)"
                )
            unknown = [k for k in patch if k not in keys]
            if unknown:
                raise BadResult(
                    f"returned {_keys(unknown)}, which the state of `{name}` does not declare "
                    f"(its keys: {_keys(keys) or 'none'}); declare them: @workflow(state={{...}})"
                )
            if routes:
                after = State(before)
                after.update(patch)
                patch[ROUTE_KEY] = next((t for t, cond in routes.items() if cond(after)), None)
            return json.dumps(patch, default=jsonable)

        return Handler(step.fn, f"node `{step.name}`", read, write)


def _keys(keys: Any) -> str:
    keys = sorted(keys)
    return ", ".join(f"`{k}`" for k in keys)

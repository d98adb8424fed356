"""From Python types to what the runtime's YAML says: a Pydantic model's
fields to ``state_schema`` types, a function's signature and docstring to
a tool's JSON Schema."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter

_SIMPLE = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict"}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref[len("#/$defs/") :], {})
    return schema


def _type_of(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> str:
    """The state type holding exactly what ``schema`` allows, or ``any``."""
    if depth > 8:
        return "any"
    schema = _resolve(schema, root)
    variants = schema.get("anyOf")
    if isinstance(variants, list):
        others = [v for v in variants if v.get("type") != "null"]
        if len(others) == 1 and len(others) < len(variants):
            inner = _type_of(others[0], root, depth + 1)
            return "any" if inner == "any" else f"optional[{inner}]"
        return "any"
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "str"
    t = schema.get("type")
    if t == "array":
        items = schema.get("items")
        if isinstance(items, dict):
            inner = _type_of(items, root, depth + 1)
            return "list" if inner == "any" else f"list[{inner}]"
        return "list"
    if isinstance(t, str) and t in _SIMPLE:
        return _SIMPLE[t]
    return "any"


def state_schema(model: type[BaseModel]) -> dict[str, str]:
    """The ``state_schema`` of a workflow whose state is ``model``."""
    root = model.model_json_schema()
    props = root.get("properties", {})
    return {name: _type_of(schema, root) for name, schema in props.items()}


_PARAM = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring's description and its ``Args:`` entries (Google style)."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    description: list[str] = []
    params: dict[str, str] = {}
    section = None
    last = None
    for line in lines:
        head = line.strip().rstrip(":").lower()
        if line.strip().endswith(":") and head in ("args", "arguments", "parameters", "returns", "raises"):
            section = head
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters"):
            m = _PARAM.match(line)
            if m and line.startswith((" ", "\t")) and not line.startswith(("        ", "\t\t")):
                last = m.group(1).lstrip("*")
                params[last] = m.group(2).strip()
            elif last and line.strip():
                params[last] += " " + line.strip()
    return "\n".join(description).strip(), params


def tool_schema(fn: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """A tool's description and the JSON Schema of its arguments, from its
    type hints and docstring."""
    sig = inspect.signature(fn)
    description, docs = _doc_parts(fn.__doc__ or "")
    hints = _hints(fn)
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        schema = TypeAdapter(annotation).json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        if name in docs:
            schema["description"] = docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        else:
            try:
                schema["default"] = TypeAdapter(annotation).dump_python(param.default, mode="json")
            except Exception:  # a default that is not JSON: say nothing of it
                pass
        properties[name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
    if defs:
        out["$defs"] = defs
    return description or fn.__name__, out


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        import typing

        return typing.get_type_hints(fn)
    except Exception:
        return {k: v for k, v in getattr(fn, "__annotations__", {}).items() if not isinstance(v, str)}

"""Tools for agents: ``@tool`` Python functions, MCP servers' tools.

A :class:`Tool` is a typed Python function (sync or async) the model may
call: its JSON Schema comes from its type hints, its description (and each
argument's) from its docstring. The runtime calls it through its function
registry: the model's arguments are validated against the hints (a
mismatch, or what the function raises, is told to the model as the
tool's result), and its return value goes back as JSON text.

An :class:`MCPServer` is an MCP server of the workflow's ``mcp:`` section
(a command over stdio, or a streamable HTTP url); ``server.tool("name")``
is one of its tools, and ``MCPServer(..., tools=[...])`` offers those
named."""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ._runtime import Runtime
from ._schema import _hints, tool_schema
from ._steps import Handler, to_json
from .errors import ValidationError

__all__ = ["Tool", "tool", "MCPServer", "MCPTool"]

# Set while a tool runs: an agent run there is not a step's (see jamjet.agent).
in_tool: contextvars.ContextVar[bool] = contextvars.ContextVar("jamjet_in_tool", default=False)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class ToolArgumentsError(Exception):
    """The model's arguments do not fit the tool's parameters."""


class Tool:
    """A Python function offered to agents as a tool (see :func:`tool`).

    It stays callable as the function it wraps. ``name``, ``description``
    and ``parameters`` (a JSON Schema) are what the model is offered."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a tool wraps a function, not {fn!r}")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", ""))
        if not _NAME.match(self.name):
            raise ValidationError(
                f"tool name `{self.name}`: use letters, digits, `_` and `-` (at most 64, not starting with a digit)"
            )
        if parameters is None:
            doc_description, parameters = tool_schema(fn)
            description = description or doc_description
        self.description = description or self.name
        self.parameters = parameters
        self.is_async = inspect.iscoroutinefunction(fn)
        self._adapters: dict[str, TypeAdapter[Any]] | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    # ----- how the runtime calls it -----

    def _bind(self, args: Any) -> dict[str, Any]:
        """The model's arguments, validated against the function's hints."""
        if not isinstance(args, Mapping):
            raise ToolArgumentsError(f"the arguments of tool `{self.name}` are not an object: {args!r:.200}")
        if self._adapters is None:
            hints = _hints(self.fn)
            self._adapters = {
                p.name: TypeAdapter(hints.get(p.name, Any))
                for p in inspect.signature(self.fn).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
        sig = inspect.signature(self.fn)
        takes_more = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        bound: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in args.items():
            adapter = self._adapters.get(key)
            if adapter is None:
                if takes_more:
                    bound[key] = value
                else:
                    problems.append(f"`{key}` is not a parameter (parameters: {', '.join(self._adapters) or 'none'})")
                continue
            try:
                bound[key] = adapter.validate_python(value)
            except PydanticValidationError as e:
                problems.append(f"`{key}`: {e.errors()[0]['msg'] if e.errors() else e}")
        for p in sig.parameters.values():
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in args:
                problems.append(f"`{p.name}` is missing")
        if problems:
            raise ToolArgumentsError(f"the arguments of tool `{self.name}` do not fit its parameters: " + "; ".join(problems))
        return bound

    def handler(self, runtime: Runtime | None = None) -> Handler:
        """What the runtime calls (``Runtime.add_function``)."""
        del runtime  # a plain tool runs the same on every runtime
        if self.is_async:

            async def call_async(args: Any) -> Any:
                in_tool.set(True)
                return await self.fn(**self._bind(args))

            fn: Callable[[Any], Any] = call_async
        else:

            def call(args: Any) -> Any:
                token = in_tool.set(True)
                try:
                    return self.fn(**self._bind(args))
                finally:
                    in_tool.reset(token)

            fn = call
        return Handler(fn, f"tool `{self.name}`", json.loads, lambda _args, out: json.dumps(to_json(out)))

    def register(self, runtime: Runtime) -> None:
        """Teach ``runtime`` this tool (by its name), so that the agents of
        the workflows it runs, YAML ones included, can call it."""
        runtime.add_function(self.name, self.handler(runtime), self.description, self.parameters)

    def __repr__(self) -> str:
        return f"jamjet.Tool({self.name!r})"


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Make a typed Python function (sync or async) a tool agents can call.

    The parameters' JSON Schema comes from the type hints (Pydantic types
    included), each parameter's description from the docstring's ``Args:``
    section, the tool's description from the docstring's first part::

        @tool
        def search_web(query: str, limit: int = 5) -> list[str]:
            \"\"\"Search the web.

            Args:
                query: What to look for.
                limit: How many results.
            \"\"\"

    ``@tool(name=..., description=...)`` overrides them. The tool stays
    directly callable."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description)

    return make(fn) if fn is not None else make


class MCPTool:
    """One tool of an :class:`MCPServer` (``server.tool("name")``)."""

    def __init__(self, server: MCPServer, name: str) -> None:
        if not name or "." in name:
            raise ValidationError(f"MCP server `{server.name}`: `{name}` is not a tool name")
        self.server = server
        self.name = name

    @property
    def written(self) -> str:
        """As an agent's ``tools:`` writes it: ``server.tool``."""
        return f"{self.server.name}.{self.name}"

    def __repr__(self) -> str:
        return f"jamjet.MCPTool({self.written!r})"


class MCPServer:
    """An MCP server whose tools agents call: a local one started as a
    child process over stdio (``command=["python3", "server.py"]``, with
    ``env`` and ``cwd``), or a remote one over streamable HTTP (``url=``,
    ``headers``). Values may hold ``${VAR}`` references, resolved when the
    runtime connects. Offer its tools with ``tools=[...]`` here (then put
    the server in an agent's ``tools=``) or one by one with
    ``server.tool("name")``."""

    def __init__(
        self,
        name: str,
        *,
        command: str | Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        tools: Sequence[str] = (),
    ) -> None:
        if not name or not re.match(r"^[A-Za-z0-9_-]+$", name):
            raise ValidationError(f"MCP server name `{name}`: use letters, digits, `_` and `-`")
        if (command is None) == (url is None):
            raise ValidationError(
                f"MCP server `{name}` needs exactly one of command= (a local server over stdio) or url= (streamable HTTP)"
            )
        if command is not None:
            argv = [command] if isinstance(command, str) else [str(a) for a in command]
            if not argv or not argv[0]:
                raise ValidationError(f"MCP server `{name}`: command= is empty")
            if headers:
                raise ValidationError(f"MCP server `{name}`: headers= is for a url= server")
        else:
            argv = []
            if env or cwd:
                raise ValidationError(f"MCP server `{name}`: env= and cwd= are for a command= server")
        self.name = name
        self.command = argv
        self.url = url
        self.env = dict(env or {})
        self.cwd = cwd
        self.headers = dict(headers or {})
        self.tools = [MCPTool(self, t) for t in tools]

    def tool(self, name: str) -> MCPTool:
        """The server's tool ``name``, for an agent's ``tools=``."""
        return MCPTool(self, name)

    def entry(self) -> dict[str, Any]:
        """The ``mcp: servers:`` entry, as YAML writes it."""
        if self.url is not None:
            out: dict[str, Any] = {"url": self.url}
            if self.headers:
                out["headers"] = self.headers
            return out
        out = {"command": self.command[0]}
        if len(self.command) > 1:
            out["args"] = self.command[1:]
        if self.env:
            out["env"] = self.env
        if self.cwd:
            out["cwd"] = self.cwd
        return out

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self.url else f"command={self.command!r}"
        return f"jamjet.MCPServer({self.name!r}, {where})"

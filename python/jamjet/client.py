"""A client of a running JamJet server (``jamjet dev``): its REST API
(``docs/api.md``) with typed results.

>>> from jamjet import Client
>>> client = Client("http://127.0.0.1:7700")        # doctest: +SKIP
>>> run = client.submit("refund-approval", {"customer": "Ada", "amount": 30})  # doctest: +SKIP
>>> client.wait(run.id).waiting[0].prompt           # doctest: +SKIP
'Refund 30.0 to Ada?'

The API key comes from ``api_key=`` or the ``JAMJET_API_KEY`` environment
variable; the URL from the argument or ``JAMJET_SERVER`` (default
``http://127.0.0.1:7700``). Every refusal is a :class:`jamjet.ClientError`
with the HTTP ``status``, the server's ``code`` and message, and its
``details``. Only the standard library's ``http.client`` is used.

:class:`AsyncClient` is the same API for asyncio: each call runs the
blocking one in a worker thread (``asyncio.to_thread``), and
:meth:`AsyncClient.events` is an async generator.
"""

from __future__ import annotations

import asyncio
import builtins
import http.client
import json
import os
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .workflow import decision_of
from .errors import ClientError

__all__ = [
    "Client",
    "AsyncClient",
    "Execution",
    "ExecutionSummary",
    "Submitted",
    "Registration",
    "Wait",
    "Event",
    "Signalled",
    "Published",
    "Approved",
    "Moved",
]

DEFAULT_URL = "http://127.0.0.1:7700"

TERMINAL = frozenset({"completed", "failed", "cancelled"})


# ----- what the server answers -----


@dataclass(frozen=True)
class Wait:
    """One thing an execution waits for: an ``event`` (its correlation key),
    an ``approval`` (``prompt``; ``call`` for a tool call that waits for a
    decision) or a ``timer``. ``id`` is the execution that waits (a child's
    wait is listed under its parent): the one to signal or approve."""

    node: str
    kind: str
    id: str | None = None
    workflow_id: str | None = None
    event: str | None = None
    prompt: str | None = None
    call: str | None = None
    since_ms: int = 0
    deadline_ms: int | None = None
    parent: str | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Wait:
        return cls(
            node=d["node"],
            kind=d["kind"],
            id=d.get("id"),
            workflow_id=d.get("workflow_id"),
            event=d.get("event"),
            prompt=d.get("prompt"),
            call=d.get("call"),
            since_ms=d.get("since_ms", 0),
            deadline_ms=d.get("deadline_ms"),
            parent=d.get("parent"),
        )


@dataclass(frozen=True)
class Execution:
    """Where an execution stands (``GET /executions/{id}``)."""

    id: str
    workflow_id: str
    version: str
    status: str
    """``running``, ``waiting``, ``completed``, ``failed`` or ``cancelled``."""
    state: dict[str, Any]
    error: str | None
    usage: dict[str, Any]
    """Tokens and cost of its model calls: ``input_tokens``, ``output_tokens``, ``cost_usd``."""
    created_ms: int
    updated_ms: int
    waiting: list[Wait] = field(default_factory=list)
    workflow_hash: str | None = None
    key: str | None = None
    settled: bool | None = None
    """True when only the outside can move it on (it ended, or it is parked
    on events or approvals)."""

    @property
    def finished(self) -> bool:
        """Whether it ended (completed, failed or cancelled)."""
        return self.status in TERMINAL

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Execution:
        return cls(
            id=d["id"],
            workflow_id=d["workflow_id"],
            version=d["version"],
            status=d["status"],
            state=d.get("state") or {},
            error=d.get("error"),
            usage=d.get("usage") or {},
            created_ms=d["created_ms"],
            updated_ms=d["updated_ms"],
            waiting=[Wait.from_json(w) for w in d.get("waiting") or []],
            workflow_hash=d.get("workflow_hash"),
            key=d.get("key"),
            settled=d.get("settled"),
        )


@dataclass(frozen=True)
class ExecutionSummary:
    """An execution as ``GET /executions`` lists it."""

    id: str
    workflow_id: str
    version: str
    status: str
    created_ms: int
    updated_ms: int
    workflow_hash: str | None = None
    key: str | None = None
    parent: str | None = None
    """The execution that started it (a branch, a sub-workflow), else None."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ExecutionSummary:
        return cls(
            id=d["id"],
            workflow_id=d["workflow_id"],
            version=d["version"],
            status=d["status"],
            created_ms=d["created_ms"],
            updated_ms=d["updated_ms"],
            workflow_hash=d.get("workflow_hash"),
            key=d.get("key"),
            parent=d.get("parent"),
        )


@dataclass(frozen=True)
class Submitted:
    """A submitted execution: ``created`` is False when the idempotency key
    named one that existed already (nothing new was started)."""

    id: str
    workflow_id: str
    version: str
    status: str
    created: bool


@dataclass(frozen=True)
class Registration:
    """A workflow the server offers by id and version."""

    workflow_id: str
    version: str
    hash: str
    registered_ms: int
    created: bool = False
    """True when this request registered it (False: the same content was there)."""


@dataclass(frozen=True)
class Event:
    """One record of an execution's journal: ``type`` is the event's name
    (``NodeCompleted``, ``SignalReceived``...), ``data`` its fields (None
    for an event without fields, such as ``ExecutionCompleted``)."""

    seq: int
    at_ms: int
    type: str
    data: Any

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Event:
        ev = d["event"]
        if isinstance(ev, str):
            kind, data = ev, None
        else:
            ((kind, data),) = ev.items()
        return cls(seq=d["seq"], at_ms=d["at_ms"], type=kind, data=data)


@dataclass(frozen=True)
class Signalled:
    """The answer to a signal: ``kept`` is True when nothing waited for the
    key yet (the event is kept until the execution reaches a wait for it);
    ``awaited`` is what it waited for when the signal came."""

    id: str
    status: str
    kept: bool
    awaited: list[Wait] = field(default_factory=list)


@dataclass(frozen=True)
class Published:
    """An event sent by key: the executions it was delivered to, or kept
    (until ``kept_until_ms``) for the first that will wait for it."""

    key: str
    delivered: list[str]
    kept: bool
    kept_until_ms: int | None = None


@dataclass(frozen=True)
class Approved:
    """A decision taken: the approval node (or the tool ``call``) decided."""

    id: str
    node: str
    status: str
    call: str | None = None


@dataclass(frozen=True)
class Moved:
    """Where an execution stands after a cancel."""

    id: str
    status: str


# ----- the wire -----


def _error(status: int, body: bytes, method: str, what: str) -> ClientError:
    code: str | None = None
    details: Any = None
    message = body.decode("utf-8", "replace").strip() or http.client.responses.get(status, "")
    try:
        err = json.loads(body)["error"]
        code, message, details = err.get("code"), err.get("message", message), err.get("details")
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    execution = what.split("/")[2] if what.startswith("/executions/exec_") else None
    return ClientError(
        f"{method} {what}: {status} {code or http.client.responses.get(status, '')}: {message}",
        status=status,
        code=code,
        details=details,
        execution_id=execution,
    )


def _workflow_ir(workflow: Any) -> dict[str, Any] | None:
    """The IR to run for ``workflow`` when it is not a registered id."""
    from . import _native
    from .workflow import Workflow

    if isinstance(workflow, Workflow):
        workflow = workflow.compile()
    elif isinstance(workflow, os.PathLike):
        workflow = _native.compile_file(os.fspath(workflow))
    elif isinstance(workflow, str) and "\n" in workflow:
        workflow = _native.compile(workflow, "submitted.yaml")
    if isinstance(workflow, _native.Workflow):
        ir: dict[str, Any] = json.loads(workflow.ir_json())
        return ir
    return None


def _json_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class Client:
    """A client of a JamJet server's REST API.

    ``Client(url)`` (default: ``JAMJET_SERVER`` or ``http://127.0.0.1:7700``)
    sends ``Authorization: Bearer <api_key>`` when a key is given or set in
    ``JAMJET_API_KEY``. ``timeout`` (seconds) bounds each request's
    connection and each read. Safe to share between threads (each request
    opens its own connection)."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        url = url or os.environ.get("JAMJET_SERVER") or DEFAULT_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"`{url}` is not a server URL (http://HOST:PORT)")
        self.url = url.rstrip("/")
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("JAMJET_API_KEY") or None
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"jamjet.Client({self.url!r}{', with a key' if self.api_key else ''})"

    # ----- plumbing -----

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        host, port = self._parts.hostname, self._parts.port
        assert host is not None
        if self._parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "jamjet-python"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        if extra:
            h.update(extra)
        return h

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, self._prefix + path, body=body, headers=self._headers(headers))
            res = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ClientError(f"{method} {self.url}{path}: cannot reach the server: {e}") from e
        return conn, res

    def _request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        content_type: str = "application/json",
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        headers = {"Content-Type": content_type} if body is not None else None
        conn, res = self._open(method, path, body, headers)
        try:
            data = res.read()
        except (OSError, http.client.HTTPException) as e:
            raise ClientError(f"{method} {self.url}{path}: the answer broke off: {e}") from e
        finally:
            conn.close()
        if res.status >= 400:
            raise _error(res.status, data, method, path)
        try:
            return res.status, (json.loads(data) if data else None)
        except ValueError as e:
            raise ClientError(f"{method} {self.url}{path}: the answer is not JSON: {e}", status=res.status) from e

    @staticmethod
    def _id(execution_id: str) -> str:
        return urllib.parse.quote(execution_id, safe="")

    # ----- the API -----

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "version": ...}`` (needs no key)."""
        health: dict[str, Any] = self._request("GET", "/health")[1]
        return health

    def register(self, workflow: str | os.PathLike[str] | Any, *, replace: bool = False) -> Registration:
        """Register a workflow with the server: YAML text, a YAML file's
        path, or a compiled workflow (``jamjet._native.compile``, a
        :class:`jamjet.Workflow`, sent as its IR). ``replace=True`` replaces
        other content under the same id and version (else 409)."""
        query = "?replace=true" if replace else ""
        if isinstance(workflow, os.PathLike):
            workflow = Path(workflow).read_text()
        if isinstance(workflow, str):
            status, r = self._request(
                "POST", f"/workflows{query}", raw=workflow.encode(), content_type="application/yaml"
            )
        else:
            ir = _workflow_ir(workflow)
            if ir is None:
                raise ClientError(f"register() takes YAML text, a path or a compiled workflow, not {workflow!r:.80}")
            status, r = self._request("POST", f"/workflows{query}", ir)
        return Registration(r["workflow_id"], r["version"], r["hash"], r["registered_ms"], created=status == 201)

    def workflows(self) -> builtins.list[Registration]:
        """The registered workflows."""
        r = self._request("GET", "/workflows")[1]
        return [Registration(w["workflow_id"], w["version"], w["hash"], w["registered_ms"]) for w in r["workflows"]]

    def submit(
        self,
        workflow: str | os.PathLike[str] | Any,
        input: Mapping[str, Any] | BaseModel | None = None,
        *,
        version: str | None = None,
        key: str | None = None,
        session: str | None = None,
    ) -> Submitted:
        """Start an execution. ``workflow`` is a registered workflow's id
        (``version``: which one; default the last registered), or a
        workflow to run as it is without registering it: YAML text (a str
        with a line break), a YAML file's path (a ``pathlib.Path``), or a
        compiled workflow. ``input`` is the input state (a dict or a
        Pydantic model). ``key`` (an idempotency key): the same key again
        with the same workflow and input gives the same execution
        (``created`` False); with another input, a 409 ``key_conflict``."""
        body: dict[str, Any] = {}
        ir = _workflow_ir(workflow)
        if ir is not None:
            if version is not None:
                raise ClientError("submit(): version= goes with a workflow id, not with a workflow given whole")
            body["workflow"] = ir
        elif isinstance(workflow, str):
            body["workflow_id"] = workflow
            if version is not None:
                body["version"] = version
        else:
            raise ClientError(f"submit(): workflow is an id, YAML, a path or a compiled workflow, not {workflow!r:.80}")
        if input is not None:
            body["input"] = _json_data(input)
        if key is not None:
            body["idempotency_key"] = key
        if session is not None:
            body["session"] = session
        status, r = self._request("POST", "/executions", body)
        return Submitted(r["id"], r["workflow_id"], r["version"], r["status"], created=status == 201)

    def get(self, execution_id: str) -> Execution:
        """Where execution ``execution_id`` stands: status, state, error,
        usage, what it waits for."""
        return Execution.from_json(self._request("GET", f"/executions/{self._id(execution_id)}")[1])

    def wait(self, execution_id: str, *, timeout: float = 60.0, until: str = "settled") -> Execution:
        """Poll execution ``execution_id`` until it is settled (``until=
        "settled"``: it ended, or only a signal or a decision can move it
        on) or ended (``until="finished"``), for at most ``timeout``
        seconds (then :class:`TimeoutError`)."""
        if until not in ("settled", "finished"):
            raise ClientError(f"wait(): until= is `settled` or `finished`, not `{until}`")
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            e = self.get(execution_id)
            if e.finished or (until == "settled" and e.settled):
                return e
            if time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id} is still {e.status} after {timeout} s")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def list(
        self,
        status: str | None = None,
        *,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[ExecutionSummary]:
        """The server's executions, oldest first: all of them (page after
        page), or the first ``limit``; only those with ``status`` or of
        ``workflow`` when given."""
        out: list[ExecutionSummary] = []
        cursor: str | None = None
        while limit is None or len(out) < limit:
            q: dict[str, Any] = {"limit": min(1000, limit - len(out)) if limit is not None else 1000}
            if status is not None:
                q["status"] = status
            if workflow is not None:
                q["workflow"] = workflow
            if cursor is not None:
                q["cursor"] = cursor
            r = self._request("GET", f"/executions?{urllib.parse.urlencode(q)}")[1]
            out.extend(ExecutionSummary.from_json(s) for s in r["executions"])
            cursor = r.get("next_cursor")
            if not cursor or not r["executions"]:
                break
        return out

    def history(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        """Execution ``execution_id``'s journal so far (records above ``after``)."""
        q = f"?after={after}" if after else ""
        r = self._request("GET", f"/executions/{self._id(execution_id)}/events{q}")[1]
        return [Event.from_json(e) for e in r["events"]]

    def events(
        self, execution_id: str, *, after: int = 0, read_timeout: float | None = 60.0
    ) -> Generator[Event, None, None]:
        """Follow execution ``execution_id``'s journal live (Server-Sent
        Events): yields each record above ``after`` as it becomes durable,
        and returns when the execution has ended (after its last record)
        or the server closes the stream (when it shuts down: call again
        with ``after=`` the last ``seq`` seen to go on). ``read_timeout``
        (seconds) bounds each wait for the next line; the server sends a
        keep-alive every 15 s, so the default never cuts a live stream."""
        path = f"/executions/{self._id(execution_id)}/events/stream"
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        conn, res = self._open("GET", path, headers=headers, timeout=read_timeout)
        try:
            if res.status >= 400:
                raise _error(res.status, res.read(), "GET", path)
            name = "message"
            data: list[str] = []
            while True:
                try:
                    raw = res.readline()
                except (socket.timeout, TimeoutError) as e:
                    raise TimeoutError(f"{path}: nothing came for {read_timeout} s") from e
                except (OSError, http.client.HTTPException):
                    return  # the server went away: the stream is over
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data:
                        text = "\n".join(data)
                        if name == "end":
                            return
                        yield Event.from_json(json.loads(text))
                    name, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    fld, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if fld == "event":
                        name = value
                    elif fld == "data":
                        data.append(value)
        finally:
            conn.close()

    def signal(self, execution_id: str, key: str, payload: Any = None) -> Signalled:
        """Deliver the event ``key`` (a wait's correlation key) with
        ``payload`` (JSON data or a Pydantic model) to execution
        ``execution_id``."""
        body: dict[str, Any] = {"key": key}
        if payload is not None:
            body["payload"] = _json_data(payload)
        r = self._request("POST", f"/executions/{self._id(execution_id)}/signal", body)[1]
        awaited = [Wait.from_json(w) for w in r.get("awaited") or []]
        return Signalled(r["id"], r["status"], bool(r.get("kept")), awaited)

    def publish(self, key: str, payload: Any = None, *, keep: str | None = None) -> Published:
        """Send the event ``key`` to every execution waiting for it (the
        sender knows the order, not the execution); when none waits, it is
        kept for ``keep`` (``90s``, ``30m``, ``24h``, ``7d``; default 24h)."""
        body: dict[str, Any] = {"key": key}
        if payload is not None:
            body["payload"] = _json_data(payload)
        if keep is not None:
            body["keep"] = keep
        r = self._request("POST", "/events", body)[1]
        return Published(r["key"], list(r.get("delivered") or []), bool(r.get("kept")), r.get("kept_until_ms"))

    def approve(
        self,
        execution_id: str,
        decision: str | bool = "approved",
        *,
        node: str | None = None,
        call: str | None = None,
        by: str | None = None,
        comment: str | None = None,
    ) -> Approved:
        """Decide the approval execution ``execution_id`` waits on:
        ``decision`` is ``"approved"``/``True`` or ``"rejected"``/``False``;
        ``node`` names the approval node when several wait, ``call`` a tool
        call that waits for a decision."""
        approved = decision_of(decision)
        body: dict[str, Any] = {"approved": approved}
        for name, value in (("node", node), ("call", call), ("by", by), ("comment", comment)):
            if value is not None:
                body[name] = value
        r = self._request("POST", f"/executions/{self._id(execution_id)}/approve", body)[1]
        return Approved(r["id"], r["node"], r["status"], r.get("call"))

    def cancel(self, execution_id: str, reason: str | None = None) -> Moved:
        """Cancel execution ``execution_id``."""
        body: dict[str, Any] = {} if reason is None else {"reason": reason}
        r = self._request("POST", f"/executions/{self._id(execution_id)}/cancel", body)[1]
        return Moved(r["id"], r["status"])


class AsyncClient:
    """:class:`Client` for asyncio: the same methods, awaitable (each runs
    the blocking call in a worker thread), and :meth:`events` an async
    generator."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.sync = Client(url, api_key=api_key, timeout=timeout)
        self.url = self.sync.url

    def __repr__(self) -> str:
        return f"jamjet.AsyncClient({self.url!r})"

    async def health(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.health)

    async def register(self, workflow: Any, *, replace: bool = False) -> Registration:
        return await asyncio.to_thread(self.sync.register, workflow, replace=replace)

    async def workflows(self) -> builtins.list[Registration]:
        return await asyncio.to_thread(self.sync.workflows)

    async def submit(
        self,
        workflow: Any,
        input: Mapping[str, Any] | BaseModel | None = None,
        *,
        version: str | None = None,
        key: str | None = None,
        session: str | None = None,
    ) -> Submitted:
        return await asyncio.to_thread(self.sync.submit, workflow, input, version=version, key=key, session=session)

    async def get(self, execution_id: str) -> Execution:
        return await asyncio.to_thread(self.sync.get, execution_id)

    async def wait(self, execution_id: str, *, timeout: float = 60.0, until: str = "settled") -> Execution:
        return await asyncio.to_thread(self.sync.wait, execution_id, timeout=timeout, until=until)

    async def list(
        self, status: str | None = None, *, workflow: str | None = None, limit: int | None = None
    ) -> builtins.list[ExecutionSummary]:
        return await asyncio.to_thread(self.sync.list, status, workflow=workflow, limit=limit)

    async def history(self, execution_id: str, *, after: int = 0) -> builtins.list[Event]:
        return await asyncio.to_thread(self.sync.history, execution_id, after=after)

    async def events(
        self, execution_id: str, *, after: int = 0, read_timeout: float | None = 60.0
    ) -> AsyncIterator[Event]:
        stream = self.sync.events(execution_id, after=after, read_timeout=read_timeout)
        done = object()
        try:
            while True:
                item = await asyncio.to_thread(next, stream, done)
                if item is done:
                    return
                yield item  # type: ignore[misc]
        finally:
            await asyncio.to_thread(stream.close)

    async def signal(self, execution_id: str, key: str, payload: Any = None) -> Signalled:
        return await asyncio.to_thread(self.sync.signal, execution_id, key, payload)

    async def publish(self, key: str, payload: Any = None, *, keep: str | None = None) -> Published:
        return await asyncio.to_thread(self.sync.publish, key, payload, keep=keep)

    async def approve(
        self,
        execution_id: str,
        decision: str | bool = "approved",
        *,
        node: str | None = None,
        call: str | None = None,
        by: str | None = None,
        comment: str | None = None,
    ) -> Approved:
        return await asyncio.to_thread(
            self.sync.approve, execution_id, decision, node=node, call=call, by=by, comment=comment
        )

    async def cancel(self, execution_id: str, reason: str | None = None) -> Moved:
        return await asyncio.to_thread(self.sync.cancel, execution_id, reason)

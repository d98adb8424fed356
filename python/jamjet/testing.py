"""A loopback model server (and a ``jamjet dev`` server) for tests and
offline examples.

:class:`ModelServer` listens on ``127.0.0.1`` (a free port) and speaks the
OpenAI-compatible ``POST /v1/chat/completions`` (base url ``server.base_url``)
and Anthropic's ``POST /v1/messages`` (base url ``server.url``). By default
it answers ``echo: <last user message>``; a message that carries tool
results gets ``tool said: <results>``. Rules override that, checked in the
order they were added::

    with ModelServer() as server:
        server.reply_tools([("search_web", {"query": "agents"})], when=lambda r: r.turn == 1)
        server.reply("the answer", when=lambda r: "tool said" in r.last_user)

Every request is recorded (``server.requests``) with its headers, and
counted by ``Idempotency-Key`` (``server.count(key)``), so a test can tell
that a call was not sent twice. Usage is counted in words, so tokens are
predictable.

:class:`DevServer` runs ``jamjet dev`` (this package's own command) in a
child process on ``127.0.0.1`` (a free port), for a :class:`jamjet.Client`
to talk to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

__all__ = ["ModelServer", "Request", "DevServer"]


@dataclass
class Request:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    last_user: str
    turn: int
    """How many assistant messages the conversation already has, plus one."""

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def system(self) -> str:
        if isinstance(self.body.get("system"), str):
            return self.body["system"]
        return "\n".join(
            m.get("content") or "" for m in self.body.get("messages", []) if m.get("role") == "system"
        )


@dataclass
class _Rule:
    when: Callable[[Request], bool]
    text: str | Callable[[Request], str] | None = None
    tools: list[tuple[str, dict[str, Any]]] | None = None
    status: int | None = None
    delay: float = 0.0
    times: int | None = None
    used: int = 0


def _words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if part.get("type") == "text":
                    out.append(part.get("text", ""))
                elif part.get("type") == "tool_result":
                    out.append(_text_of(part.get("content")))
        return " ".join(out)
    return ""


@dataclass
class ModelServer:
    """See the module docs. Use as a context manager, or call :meth:`close`."""

    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._keys: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "the body is not JSON"}})
                    return
                status, payload = server._answer(self.path, body, {k.lower(): v for k, v in self.headers.items()})
                if body.get("stream") is True and status == 200 and "choices" in payload:
                    self._stream(payload)
                else:
                    self._send(status, payload)

            def _stream(self, payload: dict[str, Any]) -> None:
                """The reply as OpenAI streams it: a chunk per word, then usage, then [DONE]."""
                message = payload["choices"][0]["message"]
                base = {"id": payload.get("id"), "object": "chat.completion.chunk", "model": payload.get("model")}
                chunks: list[dict[str, Any]] = []
                for word in (message.get("content") or "").split(" "):
                    piece = word if not chunks else " " + word
                    chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if message.get("tool_calls"):
                    calls = [{**c, "index": i} for i, c in enumerate(message["tool_calls"])]
                    chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]})
                finish = payload["choices"][0].get("finish_reason")
                chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                chunks.append({**base, "choices": [], "usage": payload.get("usage")})
                data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="model-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic's base url)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (an OpenAI-compatible base url)."""
        return self.url + "/v1"

    # ----- rules -----

    def reply(
        self, text: str | Callable[[Request], str], *, when: Callable[[Request], bool] = lambda r: True,
        times: int | None = None, delay: float = 0.0,
    ) -> None:
        """Answer with ``text`` (or ``text(request)``) when ``when(request)``."""
        self._rules.append(_Rule(when=when, text=text, times=times, delay=delay))

    def reply_tools(
        self, calls: list[tuple[str, dict[str, Any]]], *, when: Callable[[Request], bool] = lambda r: True,
        times: int | None = None, delay: float = 0.0,
    ) -> None:
        """Answer with tool calls ``[(name, arguments), ...]``."""
        self._rules.append(_Rule(when=when, tools=calls, times=times, delay=delay))

    def fail(self, status: int, *, when: Callable[[Request], bool] = lambda r: True, times: int | None = None) -> None:
        """Answer with HTTP ``status``."""
        self._rules.append(_Rule(when=when, status=status, times=times))

    # ----- what it saw -----

    def count(self, key: str) -> int:
        """How many requests carried Idempotency-Key ``key``."""
        with self._lock:
            return self._keys[key]

    def keys(self) -> Counter[str]:
        with self._lock:
            return Counter(self._keys)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- answering -----

    def _answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        last_user = _text_of(last.get("content"))
        tool_results = last.get("role") == "tool" or (
            isinstance(last.get("content"), list) and any(p.get("type") == "tool_result" for p in last["content"])
        )
        if tool_results:
            results = [_text_of(m.get("content")) for m in messages if m.get("role") == "tool"]
            if last.get("role") != "tool":
                results = [last_user]
            else:
                # The tool results of the last turn: those after the last assistant message.
                tail = []
                for m in reversed(messages):
                    if m.get("role") != "tool":
                        break
                    tail.append(_text_of(m.get("content")))
                results = list(reversed(tail))
            last_user = "tool said: " + " | ".join(results)
        turn = 1 + sum(1 for m in messages if m.get("role") == "assistant")
        req = Request(path=path, body=body, headers=headers, last_user=last_user, turn=turn)
        with self._lock:
            self.requests.append(req)
            if req.idempotency_key:
                self._keys[req.idempotency_key] += 1
            rule = next((r for r in self._rules if (r.times is None or r.used < r.times) and r.when(req)), None)
            if rule is not None:
                rule.used += 1
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and rule.status is not None:
            return rule.status, {"error": {"message": f"scripted {rule.status}", "type": "server_error"}}
        tools = rule.tools if rule is not None else None
        text: str | None = None
        if tools is None:
            if rule is not None and rule.text is not None:
                text = rule.text(req) if callable(rule.text) else rule.text
            else:
                text = last_user if tool_results else f"echo: {last_user}"
        n = len(self.requests)
        input_words = sum(_words(_text_of(m.get("content"))) for m in messages) + _words(req.system if "system" in body else "")
        anthropic = path.rstrip("/").endswith("/messages")
        if anthropic:
            if tools is not None:
                content = [
                    {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": args}
                    for i, (name, args) in enumerate(tools)
                ]
                stop, out = "tool_use", len(tools)
            else:
                content, stop, out = [{"type": "text", "text": text}], "end_turn", _words(text or "")
            return 200, {
                "id": f"msg_{n}", "type": "message", "role": "assistant", "model": body.get("model"),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": input_words, "output_tokens": out},
            }
        if tools is not None:
            calls = [
                {"id": f"call_{n}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for i, (name, args) in enumerate(tools)
            ]
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": calls}
            finish, out = "tool_calls", len(calls)
        else:
            message, finish, out = {"role": "assistant", "content": text}, "stop", _words(text or "")
        return 200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1_700_000_000, "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": input_words, "completion_tokens": out, "total_tokens": input_words + out},
        }


class DevServer:
    """``jamjet dev`` in a child process, on ``127.0.0.1`` and a port the OS
    picks: ``server.url`` once it listens. ``data_dir`` defaults to a
    temporary folder (removed when the server stops); ``api_keys`` makes it
    ask for one of those keys (``JAMJET_API_KEYS``); ``args`` are more
    ``jamjet dev`` flags (``--workflows DIR``...)::

        with DevServer(api_keys=["k1"]) as server:
            client = server.client()   # a jamjet.Client with the first key
            ...

    ``stop()`` ends it with SIGTERM (a graceful shutdown), ``kill()`` with
    SIGKILL; each waits for the process, bounded."""

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        api_keys: list[str] | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        import tempfile

        self._temp = None if data_dir is not None else tempfile.mkdtemp(prefix="jamjet-dev-")
        self.data_dir = data_dir if data_dir is not None else os.path.join(self._temp or "", "data")
        self.api_keys = list(api_keys or [])
        self.args = list(args or [])
        self.env = env
        self.start_timeout = start_timeout
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []

    @property
    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        return "".join(self._stderr)

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def start(self) -> DevServer:
        """Start the server and wait (at most ``start_timeout`` s) for its
        ``jamjet dev listening on http://ADDR`` line."""
        import queue

        env = dict(os.environ if self.env is None else self.env)
        env.pop("JAMJET_SERVER", None)
        env.pop("JAMJET_API_KEYS", None)
        if self.api_keys:
            env["JAMJET_API_KEYS"] = ",".join(self.api_keys)
        cmd = [sys.executable, "-m", "jamjet.cli", "--data-dir", self.data_dir, "dev", "--bind", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            [*cmd, *self.args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        lines: queue.Queue[str | None] = queue.Queue()
        proc = self.process

        def read_out() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        def read_err() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                self._stderr.append(raw.decode("utf-8", "replace"))

        threading.Thread(target=read_out, daemon=True).start()
        threading.Thread(target=read_err, daemon=True).start()
        try:
            first = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            first = None
        prefix = "jamjet dev listening on "
        if first is None or not first.startswith(prefix):
            self.kill()
            raise RuntimeError(f"jamjet dev did not start (first line {first!r}); stderr:\n{self.stderr}")
        self.url = first[len(prefix) :].strip()
        return self

    def client(self, api_key: str | None = None) -> Client:
        """A :class:`jamjet.Client` of this server, with ``api_key`` (default:
        the first of ``api_keys``)."""
        from .client import Client

        key = api_key if api_key is not None else (self.api_keys[0] if self.api_keys else None)
        return Client(self.url, api_key=key or "")

    def _reap(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait for the exit (SIGKILL after ``timeout`` s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self._reap(timeout)
        self._cleanup()
        return code

    def kill(self) -> None:
        """SIGKILL (``kill -9``), then reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self._reap(30.0)

    def _cleanup(self) -> None:
        if self._temp is not None:
            import shutil

            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

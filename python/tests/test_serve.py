"""A workflow built in Python, registered and served by this process
(Runtime.serve): driven over REST and over A2A with real HTTP on loopback."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import State, Workflow, node, workflow


class Q(BaseModel):
    question: str
    answer: str = ""


def _http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _poll(url: str, id: str) -> dict[str, Any]:
    for _ in range(300):  # up to 30 s
        status, body = _http("GET", f"{url}/executions/{id}")
        assert status == 200, body
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"execution {id} did not end: {body}")


def test_a_python_workflow_is_served_over_rest_and_a2a() -> None:
    rt = jamjet.Runtime()
    wf = Workflow("py-answerer", state=Q, runtime=rt)

    @wf.step
    async def answer(q: Q) -> Q:
        return q.model_copy(update={"answer": f"Python says: {q.question.upper()}"})

    wf.agents = {"helper": {"model": "gpt-4o-mini", "instructions": "Help with questions."}}
    digest = wf.register()
    url = rt.serve()
    try:
        assert url.startswith("http://127.0.0.1:") and rt.url == url
        status, listed = _http("GET", f"{url}/workflows")
        assert status == 200
        assert any(w["workflow_id"] == "py-answerer" and w["hash"] == digest for w in listed["workflows"]), listed

        # REST: submit, then read the result.
        status, started = _http("POST", f"{url}/executions", {"workflow_id": "py-answerer", "input": {"question": "hi"}})
        assert status == 201, started
        done = _poll(url, started["id"])
        assert done["status"] == "completed", done
        assert done["state"] == {"question": "hi", "answer": "Python says: HI"}

        # A2A: the agent card, then a message (v0.3 JSON-RPC) answered by the Python step.
        status, card = _http("GET", f"{url}/a2a/py-answerer/.well-known/agent-card.json")
        assert status == 200 and card["name"], card
        rpc = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "m-1",
                    "role": "user",
                    "parts": [{"kind": "data", "data": {"question": "over a2a"}}],
                }
            },
        }
        status, reply = _http("POST", f"{url}/a2a/py-answerer", rpc)
        assert status == 200, reply
        task = reply["result"]
        assert task["status"]["state"] == "completed", reply
        assert task["artifacts"][0]["parts"][0]["data"]["answer"] == "Python says: OVER A2A"
        # The workflow's local agent is served too.
        status, helper = _http("GET", f"{url}/a2a/py-answerer.helper/.well-known/agent-card.json")
        assert status == 200, helper
        # v1.0 names too.
        rpc2 = dict(rpc, method="SendMessage", id=2)
        rpc2["params"] = {"message": {"messageId": "m-2", "role": "ROLE_USER", "parts": [{"data": {"question": "v1"}}]}}
        status, reply2 = _http("POST", f"{url}/a2a/py-answerer", rpc2, {"A2A-Version": "1.0"})
        assert status == 200, reply2
        assert "Python says: V1" in json.dumps(reply2), reply2
    finally:
        rt.close()
    assert rt.url is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/health", timeout=5)


def test_a_decorator_workflow_is_served_too() -> None:
    rt = jamjet.Runtime()

    @workflow(id="shouter", runtime=rt)
    class Shouter:
        @node
        def shout(self, state: State) -> State:
            return {"out": state["text"].upper() + "!"}

    Shouter.register()
    url = rt.serve()
    try:
        status, started = _http("POST", f"{url}/executions", {"workflow_id": "shouter", "input": {"text": "hey"}})
        assert status == 201, started
        assert _poll(url, started["id"])["state"] == {"text": "hey", "out": "HEY!"}
        with pytest.raises(jamjet.JamjetError, match=r"served already, at http://127.0.0.1"):
            rt.serve()
        rt.stop_serving()
        assert rt.url is None
        again = rt.serve()
        assert _http("GET", f"{again}/health")[0] == 200
    finally:
        rt.close()


def test_serve_listens_on_loopback_only() -> None:
    rt = jamjet.Runtime()
    try:
        with pytest.raises(jamjet.ValidationError, match=r"loopback only"):
            rt.serve("0.0.0.0:0")
        with pytest.raises(jamjet.ValidationError, match=r"not an address"):
            rt.serve("here")
    finally:
        rt.close()

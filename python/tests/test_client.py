"""jamjet.Client against a real `jamjet dev` (this package's own command, a
child process on 127.0.0.1:0) with API keys on: every method, an approval
workflow and a wait + signal workflow, the live event stream, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import AsyncClient, Client, ClientError
from jamjet.client import Event, Execution
from jamjet.testing import DevServer

KEY = "jj_test_key_1"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    data = tmp_path_factory.mktemp("dev") / "data"
    with DevServer(str(data), api_keys=[KEY, "jj_test_key_2"]) as s:
        c = s.client()
        for name in ("hello.yaml", "approval.yaml", "wait.yaml"):
            c.register(EXAMPLES / name)
        yield s


@pytest.fixture
def client(server: DevServer) -> Client:
    return Client(server.url, api_key=KEY)


def follow(client: Client, execution_id: str, **kw: object) -> tuple[list[Event], threading.Thread]:
    """Collect `client.events(...)` on a thread (the test joins it, bounded)."""
    got: list[Event] = []

    def run() -> None:
        for e in client.events(execution_id, **kw):  # type: ignore[arg-type]
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return got, t


def test_register_submit_get_and_idempotency(client: Client) -> None:
    assert client.health()["status"] == "ok"
    again = client.register(EXAMPLES / "hello.yaml")
    assert (again.workflow_id, again.version, again.created) == ("hello", "0.1.0", False)
    assert {"hello", "refund-approval", "await-payment"} <= {w.workflow_id for w in client.workflows()}

    run = client.submit("hello", {"name": "Ada Lovelace"}, key="hello-1")
    assert run.created and run.workflow_id == "hello" and run.id.startswith("exec_")
    done = client.wait(run.id)
    assert isinstance(done, Execution)
    assert done.status == "completed" and done.completed and done.finished and done.settled
    assert done.state["greeting"] == "Hello, Ada Lovelace!" and done.state["verdict"] == "a long name"
    assert done.error is None and done.waiting == []
    assert done.usage == {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    assert done.key == "hello-1" and done.workflow_hash == again.hash

    same = client.submit("hello", {"name": "Ada Lovelace"}, key="hello-1")
    assert same.id == run.id and not same.created

    with pytest.raises(ClientError) as e:
        client.submit("hello", {"name": "Grace"}, key="hello-1")
    assert e.value.status == 409 and e.value.code == "key_conflict"
    assert run.id in str(e.value)


def test_submit_yaml_text_a_path_and_a_compiled_workflow(client: Client, tmp_path: Path) -> None:
    text = (EXAMPLES / "hello.yaml").read_text().replace("id: hello", "id: hello-inline")
    by_text = client.wait(client.submit(text, {"name": "Bo"}).id)
    assert by_text.workflow_id == "hello-inline" and by_text.state["verdict"] == "a short name"
    path = tmp_path / "inline.yaml"
    path.write_text(text)
    by_path = client.wait(client.submit(path, {"name": "Bo"}).id)
    assert by_path.state == by_text.state and by_path.workflow_hash == by_text.workflow_hash
    compiled = jamjet._native.compile_file(str(path))
    assert client.wait(client.submit(compiled, {"name": "Bo"}).id).state == by_text.state

    class Name(BaseModel):
        name: str

    assert client.wait(client.submit("hello", Name(name="Cy")).id).state["greeting"] == "Hello, Cy!"


def test_an_approval_workflow_waits_streams_and_is_approved(client: Client) -> None:
    run = client.submit("refund-approval", {"customer": "Ada", "amount": 30})
    parked = client.wait(run.id)
    assert parked.status == "waiting" and parked.settled
    (w,) = parked.waiting
    assert w.kind == "approval" and w.node == "ask" and w.id == run.id
    assert w.prompt is not None and "to Ada?" in w.prompt
    assert any(s.id == run.id for s in client.list("waiting"))

    events, reader = follow(client, run.id)
    decided = client.approve(run.id, "approved", by="ada", comment="fine")
    assert (decided.id, decided.node) == (run.id, "ask")
    reader.join(60)
    assert not reader.is_alive(), "the event stream did not end with the execution"
    kinds = [e.type for e in events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    assert "ApprovalDecided" in kinds
    decision = next(e for e in events if e.type == "ApprovalDecided").data
    assert decision["approved"] is True and decision["by"] == "ada"
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert [e.seq for e in client.history(run.id)] == [e.seq for e in events]

    done = client.get(run.id)
    assert done.status == "completed" and done.state["status"] == "refunded (approved by ada)"

    # Rejected: the workflow goes on at `on_reject`, which reads the comment.
    other = client.submit("refund-approval", {"customer": "Bo", "amount": 9000})
    client.wait(other.id)
    client.approve(other.id, False, comment="too much")
    assert client.wait(other.id).state["status"] == "refused: too much"
    # Deciding it again: nothing waits.
    with pytest.raises(ClientError) as e:
        client.approve(other.id, True)
    assert e.value.status == 409 and e.value.code == "not_waiting" and e.value.execution_id == other.id
    assert "already decided" in str(e.value)


def test_a_wait_workflow_is_signalled_followed_and_cancelled(client: Client) -> None:
    run = client.submit("await-payment", {"order_id": "42"})
    parked = client.wait(run.id)
    assert parked.status == "waiting"
    assert [(w.kind, w.event) for w in parked.waiting] == [("event", "payment:42")]

    # Nothing waits for another order's key: the event is kept, not an error.
    kept = client.signal(run.id, "payment:41", {"amount": 1})
    assert kept.kept and [w.event for w in kept.awaited] == ["payment:42"]

    moved = client.signal(run.id, "payment:42", {"amount": 12})
    assert moved.id == run.id and not moved.kept
    # Follow it until `paid` is done (then a 60 s timer runs: stop there).
    seen: list[str] = []
    stream = client.events(run.id)
    for e in stream:
        seen.append(e.type)
        if e.type == "NodeCompleted" and e.data["node"] == "paid":
            break
    stream.close()
    assert "SignalReceived" in seen
    now = client.get(run.id)
    assert now.state["status"] == "paid 12" and now.state["payment"] == {"amount": 12}
    assert now.status in ("running", "waiting") and not now.settled

    cancelled = client.cancel(run.id, "the customer left")
    assert cancelled.id == run.id
    end = client.wait(run.id, until="finished")
    assert end.status == "cancelled" and "the customer left" in (end.error or "")
    # The stream of an ended execution gives what is left, then ends.
    last = client.history(run.id)[-1].seq
    tail = list(client.events(run.id, after=last - 1))
    assert [e.seq for e in tail] == [last]
    assert list(client.events(run.id, after=last)) == []
    with pytest.raises(ClientError) as e:
        client.cancel(run.id)
    assert e.value.status == 409 and e.value.code == "finished"


def test_an_event_published_by_key_waits_for_its_execution(client: Client) -> None:
    published = client.publish("payment:43", {"amount": 5}, keep="30m")
    assert published.kept and published.delivered == [] and published.kept_until_ms
    run = client.submit("await-payment", {"order_id": "43"})
    for e in client.events(run.id):
        if e.type == "NodeCompleted" and e.data["node"] == "paid":
            break
    assert client.get(run.id).state["status"] == "paid 5"
    client.cancel(run.id)


def test_list_filters_and_pages(client: Client) -> None:
    ids = [client.submit("hello", {"name": f"n{i}"}).id for i in range(3)]
    for i in ids:
        client.wait(i)
    everything = client.list()
    assert [s.id for s in everything] == sorted(s.id for s in everything)
    assert set(ids) <= {s.id for s in client.list("completed", workflow="hello")}
    assert len(client.list(workflow="hello", limit=2)) == 2
    assert all(s.workflow_id == "hello" and s.status == "completed" for s in client.list("completed", workflow="hello"))
    assert all(s.parent is None for s in everything)
    with pytest.raises(ClientError) as e:
        client.list("asleep")
    assert e.value.status == 400


def test_keys_a_bad_key_none_and_the_environment(server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClientError) as e:
        Client(server.url, api_key="not-a-key").list()
    assert e.value.status == 401 and e.value.code == "unauthorized"
    assert "401" in str(e.value) and "not accepted" in str(e.value)
    monkeypatch.delenv("JAMJET_API_KEY", raising=False)
    with pytest.raises(ClientError) as e:
        Client(server.url).submit("hello", {"name": "x"})
    assert e.value.status == 401
    assert Client(server.url).health()["status"] == "ok"  # needs no key
    monkeypatch.setenv("JAMJET_API_KEY", "jj_test_key_2")
    monkeypatch.setenv("JAMJET_SERVER", server.url)
    assert isinstance(Client().list(), list)


def test_errors_name_the_execution_and_the_problem(client: Client) -> None:
    missing = "exec_01K00000000000000000000000"
    with pytest.raises(ClientError) as e:
        client.get(missing)
    assert e.value.status == 404 and e.value.code == "unknown_execution" and e.value.execution_id == missing
    with pytest.raises(ClientError) as e:
        client.signal(missing, "k")
    assert e.value.status == 404
    with pytest.raises(ClientError) as e:
        client.submit("no-such-workflow")
    assert e.value.status == 404 and e.value.code == "unknown_workflow"
    with pytest.raises(ClientError) as e:
        client.submit("hello", {"name": 5})
    assert e.value.status == 422 and e.value.code == "invalid_input"
    with pytest.raises(ClientError) as e:
        client.register("workflow:\n  id: bad\n  version: 0.1.0\nnodes:\n  a: {type: set, values: {}, next: nowhere}\n")
    assert e.value.status == 422 and e.value.code == "invalid_workflow" and e.value.details["findings"]
    with pytest.raises(jamjet.ValidationError) as v:  # compiled here first: the compiler's own error
        client.submit("workflow:\n  id: bad\nnodes: {}\n")
    assert v.value.findings


def test_an_unreachable_server_is_a_client_error_without_status() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClientError) as e:
        Client(f"http://127.0.0.1:{port}", timeout=5).health()
    assert e.value.status is None and "cannot reach" in str(e.value)
    with pytest.raises(ClientError):
        Client("ftp://example")


async def test_the_async_client(server: DevServer) -> None:
    client = AsyncClient(server.url, api_key=KEY)
    run = await client.submit("refund-approval", {"customer": "Ada", "amount": 3}, key="async-1")
    parked = await client.wait(run.id)
    assert parked.waiting[0].kind == "approval"

    async def collect() -> list[str]:
        return [e.type async for e in client.events(run.id)]

    task = asyncio.create_task(collect())
    await client.approve(run.id)
    kinds = await asyncio.wait_for(task, 60)
    assert kinds[-1] == "ExecutionCompleted"
    assert (await client.get(run.id)).state["status"].startswith("refunded")
    assert run.id in {s.id for s in await client.list("completed")}
    assert (await client.history(run.id))[-1].type == "ExecutionCompleted"


def test_the_event_stream_ends_when_the_server_shuts_down(tmp_path: Path) -> None:
    with DevServer(str(tmp_path / "data"), api_keys=[KEY]) as s:
        client = s.client()
        client.register(EXAMPLES / "approval.yaml")
        run = client.submit("refund-approval", {"customer": "Ada", "amount": 1})
        client.wait(run.id)
        events, reader = follow(client, run.id)
        deadline = 600  # 0.05 s each: the parked execution's records arrive
        while not any(e.type == "Waiting" for e in events) and deadline:
            reader.join(0.05)
            deadline -= 1
        assert any(e.type == "Waiting" for e in events)
        assert s.stop() == 0
    reader.join(60)
    assert not reader.is_alive(), "the stream did not end with the server"
    assert events[-1].type == "Waiting"  # no `end`: the execution goes on at the next start

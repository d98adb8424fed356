"""A real A2A agent built on the A2A project's Python SDK (a2a-sdk 1.3),
for `tests/agent.rs`: `python agent.py` binds 127.0.0.1 on an OS-picked
port, prints `PORT <n>` as its first line, then serves until killed.

What it does depends on the first word of the message's text (or the
`op` key of a data part):
  echo   completes with a data artifact {"echo": <the message>, "calls": n}
  fail   fails the task with the message "remote says no"
  flaky  fails its first call, completes on the next ones
  ask    asks "what is your name?" (input-required); the follow-up on the
         same task completes it with {"greeting": "hello, <reply>", ...}
  slow   works for 1.5 s, then completes like echo
Every message it receives is printed as `RECV <json>` on stdout.
"""

import asyncio
import json
import socket
import sys

import uvicorn
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette

from a2a.helpers.proto_helpers import (
    get_data_parts,
    get_text_parts,
    new_data_part,
    new_task_from_user_message,
    new_text_message,
)
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Role,
    TaskState,
)

CALLS = {"n": 0, "flaky": 0}


def words(message):
    texts = get_text_parts(message.parts)
    data = get_data_parts(message.parts)
    if data and isinstance(data[0], dict):
        return str(data[0].get("op", "")), data[0]
    text = " ".join(texts)
    return (text.split() or [""])[0], text


class Executor(AgentExecutor):
    async def execute(self, context, event_queue):
        msg = context.message
        print("RECV " + json.dumps(MessageToDict(msg)), flush=True)
        CALLS["n"] += 1
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(msg)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            reply = " ".join(get_text_parts(msg.parts)) or json.dumps(get_data_parts(msg.parts))
            await updater.add_artifact([new_data_part({"greeting": "hello, " + reply, "task": task.id})])
            await updater.complete()
            return
        op, body = words(msg)
        await updater.start_work()
        if op == "fail":
            await updater.failed(new_text_message("remote says no", role=Role.ROLE_AGENT))
        elif op == "flaky" and CALLS["flaky"] == 0:
            CALLS["flaky"] += 1
            await updater.failed(new_text_message("flaky: first call fails", role=Role.ROLE_AGENT))
        elif op == "ask":
            await updater.requires_input(new_text_message("what is your name?", role=Role.ROLE_AGENT))
        else:
            if op == "slow":
                await asyncio.sleep(1.5)
            await updater.add_artifact([new_data_part({"echo": body, "calls": CALLS["n"]})])
            await updater.complete()

    async def cancel(self, context, event_queue):
        raise Exception("cancel is not supported")


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is printed: a caller never finds it closed.
    sock.listen(128)
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    card = AgentCard(
        name="py-test-agent",
        description="echo, fail, flaky, ask, slow",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["application/json"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["test"])],
    )
    handler = DefaultRequestHandler(agent_executor=Executor(), task_store=InMemoryTaskStore(), agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/")
    app = Starlette(routes=routes)
    print(f"PORT {port}", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())

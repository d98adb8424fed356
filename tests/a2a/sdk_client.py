"""Drive a `jamjet dev` A2A agent with the official Python a2a-sdk client.

Usage: sdk_client.py BASE_URL SCENARIO [ARG]
Prints one JSON object per line: {"step": ..., ...}; the Rust test
(tests/a2a_server.rs) checks them. Every wait is bounded (httpx timeouts,
asyncio.wait_for).
"""

import asyncio
import json
import sys
import uuid

import httpx
from google.protobuf import json_format, struct_pb2

from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.types import a2a_pb2 as pb

TIMEOUT = 30.0


def out(step, **kw):
    print(json.dumps({"step": step, **kw}), flush=True)


def text_message(text, task_id=None, context_id=None):
    m = pb.Message(message_id=str(uuid.uuid4()), role=pb.Role.ROLE_USER, parts=[pb.Part(text=text)])
    if task_id:
        m.task_id = task_id
    if context_id:
        m.context_id = context_id
    return m


def data_message(data, task_id=None):
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    m = pb.Message(message_id=str(uuid.uuid4()), role=pb.Role.ROLE_USER, parts=[pb.Part(data=value)])
    if task_id:
        m.task_id = task_id
    return m


def task_json(task):
    return json_format.MessageToDict(task)


async def client_for(card, streaming):
    http = httpx.AsyncClient(timeout=TIMEOUT)
    return await create_client(card, ClientConfig(streaming=streaming, httpx_client=http))


async def send(client, message, return_immediately=False):
    req = pb.SendMessageRequest(message=message)
    if return_immediately:
        req.configuration.return_immediately = True
    events = []
    async for ev in client.send_message(req):
        events.append(json_format.MessageToDict(ev))
    return events


async def main(base, scenario, arg):
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        card = await A2ACardResolver(http, base).get_agent_card()
    out("card", card=json_format.MessageToDict(card))

    if scenario == "send":
        client = await client_for(card, streaming=False)
        events = await send(client, text_message(arg))
        task = events[-1]["task"]
        out("sent", task=task)
        got = await client.get_task(pb.GetTaskRequest(id=task["id"]))
        out("got", task=task_json(got))
    elif scenario == "say":
        # One text message in a context: ARG is "CONTEXT|TEXT".
        context, text = arg.split("|", 1)
        client = await client_for(card, streaming=False)
        events = await send(client, text_message(text, context_id=context))
        out("said", task=events[-1]["task"])
    elif scenario == "stream":
        client = await client_for(card, streaming=True)
        events = await asyncio.wait_for(send(client, text_message(arg)), TIMEOUT)
        out("streamed", events=events)
    elif scenario == "cancel":
        client = await client_for(card, streaming=False)
        events = await send(client, data_message({"order_id": arg}))
        task = events[-1]["task"]
        out("parked", task=task)
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task["id"]))
        out("canceled", task=task_json(canceled))
    elif scenario == "follow-up":
        client = await client_for(card, streaming=False)
        events = await send(client, data_message({"customer": "Ada", "amount": 30}))
        task = events[-1]["task"]
        out("parked", task=task)
        events = await send(client, data_message({"approved": True, "comment": "fine"}, task_id=task["id"]))
        out("answered", task=events[-1]["task"])
    elif scenario == "stream-follow-up":
        # A follow-up over the streaming client on a task parked on an event.
        client = await client_for(card, streaming=True)
        events = await asyncio.wait_for(send(client, data_message({"order_id": arg})), TIMEOUT)
        out("parked", events=events)
        task_id = events[0]["task"]["id"]
        events = await asyncio.wait_for(send(client, data_message({"amount": 12}, task_id=task_id)), TIMEOUT)
        out("answered", events=events)
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))

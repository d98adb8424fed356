"""`async for chunk in wf.stream(...)`: a model node with `stream: true`
streams its reply (the loopback model server answers a streaming request
in OpenAI's event-stream format, a chunk per word); the chunks come in the
order they happened, the tokens before the node's record, then the result.
The journal holds the reply once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jamjet
from jamjet.testing import ModelServer

FLOW = """\
id: streamed
state_schema: { q: str, answer: str }
models:
  local: { provider: openai, model: gpt-4o-mini, base_url: "${OPENAI_BASE_URL}", api_key_env: OPENAI_API_KEY }
nodes:
  ask: { type: model, model: local, prompt: "{{ state.q }}", output_key: answer, stream: true }
"""


def test_stream_yields_tokens_in_order_then_the_records_then_the_result(
    tmp_path: Path, model_server: ModelServer
) -> None:
    model_server.reply("the tokens come one by one")
    path = tmp_path / "streamed.yaml"
    path.write_text(FLOW)
    wf = jamjet.load(path, store=str(tmp_path / ".jamjet"))

    async def follow() -> list[jamjet.StreamChunk]:
        return [chunk async for chunk in wf.stream({"q": "how"})]

    chunks = asyncio.run(follow())
    tokens = [c for c in chunks if c.kind == "token"]
    assert [t.text for t in tokens] == ["the", " tokens", " come", " one", " by", " one"]
    assert all(t.node == "ask" and t.attempt == 1 and not t.restarted for t in tokens)
    kinds = [c.kind for c in chunks]
    assert kinds[-1] == "result"
    result = chunks[-1].result
    assert result is not None and result.completed
    assert result.state["answer"] == "the tokens come one by one"
    # Every token comes before the record of the node's completion.
    completed = next(
        i for i, c in enumerate(chunks) if c.kind == "event" and "NodeCompleted" in (c.event or {})["event"]
    )
    assert max(i for i, c in enumerate(chunks) if c.kind == "token") < completed
    seqs = [c.event["seq"] for c in chunks if c.kind == "event" and c.event is not None]
    assert seqs == list(range(1, len(seqs) + 1)), "every record once, in order"
    exchanges = [e for e in result.events if "Exchange" in e["event"]]
    assert len(exchanges) == 1, "the reply is journaled once"
    assert exchanges[0]["event"]["Exchange"]["request"]["stream"] is True

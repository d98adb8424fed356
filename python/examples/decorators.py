"""The decorator API: a class whose `@node` methods are a workflow's steps,
over a dict-like State; `self.model(...)` is a durable model call.

    python python/examples/decorators.py

It runs offline: a loopback server (jamjet.testing.ModelServer) speaks
Anthropic's and OpenAI's wire formats, and ANTHROPIC_BASE_URL /
OPENAI_BASE_URL point at it. Against the real providers, leave `offline()`
out and set ANTHROPIC_API_KEY (and OPENAI_API_KEY).

The run is durable (store=): give it a directory to keep its journal in,

    python python/examples/decorators.py .jamjet

kill it during `report`, run it again with the same directory, and it
resumes there (the same key), without asking the model again for a call
that completed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from collections.abc import Iterator

from jamjet import State, node, workflow
from jamjet.testing import ModelServer

STORE = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="jamjet-example-")


@workflow(id="data-processor", version="0.1.0", store=STORE)
class DataProcessor:
    @node(start=True)
    async def process(self, state: State) -> State:
        rows = state["rows"]
        return {"analysis": f"{len(rows)} orders, {sum(rows)} items, largest {max(rows)}"}

    @node(next={"report": lambda s: s["rows"] != [], "empty": lambda s: s["rows"] == []})
    def check(self, state: State) -> State:
        return {"checked": True}

    @node(end=True)
    def empty(self, state: State) -> State:
        return {"report": "nothing to report"}

    @node
    async def report(self, state: State) -> State:
        response = await self.model(
            model="claude-sonnet-4-6",
            system="You write one-line business reports.",
            prompt=f"Write a report on: {state['analysis']}",
        )
        return {"report": response.text}


@contextmanager
def offline() -> Iterator[ModelServer]:
    """A loopback model server the model names resolve to."""
    with ModelServer() as server:
        server.reply(lambda r: f"Report: {r.last_user.removeprefix('Write a report on: ')}.")
        os.environ.update(
            ANTHROPIC_BASE_URL=server.url,
            ANTHROPIC_API_KEY="sk-ant-offline",
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="sk-offline",
        )
        yield server


def main() -> None:
    with offline() as server:
        result = DataProcessor().run_sync({"rows": [3, 1, 4, 1, 5]}, key="orders-2025-06")
        print(result.state["report"])
        print(f"Ran {result.steps_executed} steps in {result.total_duration_us / 1000:.1f}ms, "
              f"{result.usage['input_tokens']} + {result.usage['output_tokens']} tokens")
        # The same key again: the finished run is attached to, nothing runs again.
        again = DataProcessor().run_sync({"rows": [3, 1, 4, 1, 5]}, key="orders-2025-06")
        assert again.execution_id == result.execution_id
        print(f"model requests: {len(server.requests)}")
        print("nodes:", ", ".join(DataProcessor.compile().nodes()))


if __name__ == "__main__":
    main()

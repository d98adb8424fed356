"""A durable workflow whose middle step runs an agent with a tool, for the
kill -9 test (tests/test_agent_crash.py).

    python agent_crash.py STORE KEY SIDE_EFFECTS RELEASE

The tool `fetch_page` appends `start URL KEY` and `done URL` lines to
SIDE_EFFECTS; for a URL ending in /slow it waits (at most 120 s) until
the file RELEASE exists. The steps `prepare` and `finish` append their
names. Prints the final state as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pydantic import BaseModel

import jamjet
from jamjet import Agent, Workflow, tool

store, key, side, release = sys.argv[1:5]


def note(line: str) -> None:
    with open(side, "a") as f:
        f.write(line + "\n")


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page.

    Args:
        url: The page's address.
    """
    note(f"start {url} {jamjet.current_step().idempotency_key}")
    if url.endswith("/slow"):
        deadline = time.monotonic() + 120
        while not Path(release).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("never released")
            time.sleep(0.02)
    note(f"done {url}")
    return f"the page at {url}"


researcher = Agent(
    "researcher",
    model="gpt-4o-mini",
    tools=[fetch_page],
    instructions="Research the topic with your tools.",
    max_iterations=5,
)


class State(BaseModel):
    topic: str
    notes: str = ""
    research: str = ""
    summary: str = ""


wf = Workflow("crash-agent", store=store, state=State)


@wf.step
def prepare(state: State) -> State:
    note("prepare")
    return state.model_copy(update={"notes": f"notes on {state.topic}"})


@wf.step
async def research(state: State) -> State:
    result = await researcher.run(f"Research: {state.topic}")
    return state.model_copy(update={"research": result.output})


@wf.step
def finish(state: State) -> State:
    note("finish")
    return state.model_copy(update={"summary": f"{state.notes}; {len(state.research)} characters of research"})


if __name__ == "__main__":
    result = wf.run_sync(State(topic="journals"), key=key)
    print(json.dumps({"id": result.execution_id, "state": result.state.model_dump()}))

"""Two agents in one workflow: a researcher (react: a model and a @tool in a
loop) and a writer (critic: draft, critique scored 1 to 5, revise).

    python python/examples/research_writer.py

It runs offline: `offline()` starts a loopback OpenAI-compatible server
(jamjet.testing.ModelServer) scripted to play the model, and points
OPENAI_BASE_URL at it. Against OpenAI itself, leave `offline()` out and
set OPENAI_API_KEY. Every model and tool call of both agents is journaled
inside its step: with `store=".jamjet"` a killed run, run again with the
same key, resumes at the next call.
"""

from __future__ import annotations

import json
import os

from pydantic import BaseModel

from jamjet import Agent, Workflow, tool

NOTES = {
    "durable execution": "A durable runtime journals each step; after a crash it resumes at the first "
    "step that did not complete, and never runs a completed one again.",
}


@tool
def search_web(query: str) -> dict:
    """Search the web for information.

    Args:
        query: What to look for.
    """
    hits = [text for topic, text in NOTES.items() if topic in query.lower()]
    return {"query": query, "results": hits or ["nothing found"]}


researcher = Agent(
    "researcher",
    model="gpt-4o-mini",
    tools=[search_web],
    instructions="You are a researcher. Find accurate information on the given topic with your tools.",
    strategy="react",
    max_iterations=5,
    max_cost_usd=0.50,
)

writer = Agent(
    "writer",
    model="gpt-4o-mini",
    instructions="You are a writer. Write a short, clear article from the research you are given.",
    strategy="critic",
    min_score=4,
    max_iterations=3,
)


class Article(BaseModel):
    topic: str
    research: str = ""
    article: str = ""


wf = Workflow("research-writer", state=Article)


@wf.step
async def research(state: Article) -> Article:
    result = await researcher.run(f"Research: {state.topic}")
    for call in result.tool_calls:
        print(f"  researcher called {call.name}({call.arguments})")
    return state.model_copy(update={"research": result.output})


@wf.step
async def write(state: Article) -> Article:
    result = await writer.run(f"Write an article about {state.topic} from this research:\n{state.research}")
    return state.model_copy(update={"article": result.output})


def offline() -> object:
    """Start the loopback model server and point the environment at it."""
    from jamjet.testing import ModelServer

    server = ModelServer()
    os.environ["OPENAI_BASE_URL"] = server.base_url
    os.environ["OPENAI_API_KEY"] = "sk-offline"
    is_researcher = lambda r: r.system.startswith("You are a researcher")  # noqa: E731
    server.reply_tools([("search_web", {"query": "durable execution"})], when=lambda r: is_researcher(r) and r.turn == 1)
    server.reply(lambda r: json.loads(r.last_user.removeprefix("tool said: "))["results"][0], when=is_researcher)
    server.reply('{"score": 5, "reasons": []}', when=lambda r: "Score the answer" in r.last_user)
    server.reply(
        lambda r: "Durable execution, in brief. " + r.last_user.split("from this research:\n")[-1],
        when=lambda r: r.system.startswith("You are a writer"),
    )
    return server


def main() -> None:
    server = offline()
    result = wf.run_sync(Article(topic="durable execution"))
    print(result.state.article)
    print(f"Ran {result.steps_executed} steps in {result.total_duration_us / 1000:.1f}ms, "
          f"{result.usage['input_tokens'] + result.usage['output_tokens']} tokens")
    server.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()

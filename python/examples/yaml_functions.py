"""YAML from Python and Python from YAML.

    python python/examples/yaml_functions.py

1. `jamjet.load("review.yaml", functions={...})` runs a YAML workflow whose
   `type: function` nodes are the Python functions given here.
2. A Python step runs that YAML workflow as a durable sub-workflow with
   `await jamjet.run_child("review.yaml", input)`: after a crash, the step
   attaches to the child it started instead of starting another.
3. A Workflow built in Python is written out as YAML, read back (the same
   content hash), and served by this process over REST and A2A
   (`Runtime.serve`), then called over HTTP.

Everything runs offline, on loopback.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from typing import Any

from pydantic import BaseModel

import jamjet
from jamjet import State, Workflow

HERE = os.path.dirname(os.path.abspath(__file__))
REVIEW = os.path.join(HERE, "review.yaml")


# The YAML's functions: a node's input in, its result out (sync or async).
def count_words(inp: dict[str, Any]) -> int:
    return len(inp["text"].split())


async def score(state: State) -> dict[str, Any]:
    return {"score": min(1.0, state["words"] / 8)}


FUNCTIONS = {"count_words": count_words, "score": score}


class Post(BaseModel):
    title: str
    body: str
    verdict: str = ""


def main() -> None:
    rt = jamjet.Runtime(tempfile.mkdtemp(prefix="jamjet-example-"))  # durable, on sled

    # 1. Python from YAML.
    review = jamjet.load(REVIEW, functions=FUNCTIONS, runtime=rt)
    result = review.run_sync({"text": "durable execution for agents, in Rust and Python"})
    print(f"review: {result.state['verdict']} (score {result.state['score']:.2f})")

    # 2. YAML from a Python step, as a durable sub-workflow.
    wf = Workflow("publisher", state=Post, runtime=rt)

    @wf.step
    async def check(post: Post) -> Post:
        child = await jamjet.run_child(REVIEW, {"text": post.body}, functions=FUNCTIONS)
        return post.model_copy(update={"verdict": child["verdict"]})

    published = wf.run_sync(Post(title="JamJet", body="too short"), key="post-1")
    print(f"publisher: {published.state.verdict}")
    children = [e for e in rt.executions() if e["key"] and e["key"].startswith(published.execution_id)]
    print(f"  its child: {children[0]['id']} ({children[0]['workflow_id']}, {children[0]['status']})")

    # 3. A Python workflow as YAML, and served.
    path = os.path.join(tempfile.mkdtemp(prefix="jamjet-example-"), "publisher.yaml")
    with open(path, "w") as f:
        f.write(wf.to_yaml())
    same = jamjet.load(path, runtime=rt).content_hash() == wf.compile().content_hash()
    print(f"written to {os.path.basename(path)} and read back: same content hash: {same}")

    wf.register()
    url = rt.serve()  # 127.0.0.1, a free port; the steps run in this process
    body = {"workflow_id": "publisher", "input": {"title": "Served", "body": " ".join(["word"] * 9)}}
    req = urllib.request.Request(f"{url}/executions", json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        started = json.loads(resp.read())
    done = wf.resume(started["id"])  # wait for it here
    print(f"served at {url}: POST /executions -> {done.status}: {done.state.verdict}")
    rt.close()


if __name__ == "__main__":
    main()

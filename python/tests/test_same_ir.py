"""All three authoring approaches compile to the same IR: one workflow
written as YAML, as a Workflow and with the decorator API has one content
hash, and runs the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import jamjet
from jamjet import State, Workflow, node, workflow

YAML = """\
workflow:
  id: text-stats
  version: 1.0.0
  state_schema: { text: str, words: int, summary: str }
  start: count
nodes:
  count:
    type: function
    function: text-stats/count
    timeout_ms: 5000
    next: summarize
  summarize:
    type: function
    function: text-stats/summarize
"""


def count(text: str) -> dict[str, Any]:
    return {"words": len(text.split())}


def summarize(text: str, words: int) -> dict[str, Any]:
    return {"summary": f"{words} words, starting {text.split()[0]!r}"}


class Stats(BaseModel):
    text: str
    words: int = 0
    summary: str = ""


def as_workflow(runtime: jamjet.Runtime) -> Workflow:
    wf = Workflow("text-stats", version="1.0.0", state=Stats, runtime=runtime)

    # A step's name is its node's (and its function's, `text-stats/count`).
    @wf.step(name="count", timeout=5)
    def count_step(s: Stats) -> dict[str, Any]:
        return count(s.text)

    @wf.step(name="summarize")
    async def summarize_step(s: Stats) -> dict[str, Any]:
        return summarize(s.text, s.words)

    return wf


def as_class(runtime: jamjet.Runtime) -> type:
    @workflow(id="text-stats", version="1.0.0", state={"text": str, "words": int, "summary": str}, runtime=runtime)
    class TextStats:
        @node(timeout=5)
        def count(self, state: State) -> State:
            return count(state["text"])

        @node
        async def summarize(self, state: State) -> State:
            return summarize(state["text"], state["words"])

    return TextStats


def test_yaml_workflow_and_decorators_compile_to_one_ir(tmp_path: Path) -> None:
    path = tmp_path / "text-stats.yaml"
    path.write_text(YAML)
    functions = {
        "text-stats/count": lambda s: count(s["text"]),
        "text-stats/summarize": lambda s: summarize(s["text"], s["words"]),
    }
    from_yaml = jamjet.load(path, functions=functions, runtime=jamjet.Runtime())
    from_workflow = as_workflow(jamjet.Runtime())
    from_class = as_class(jamjet.Runtime())

    hashes = {
        "yaml": from_yaml.content_hash(),
        "workflow": from_workflow.compile().content_hash(),
        "decorators": from_class.compile().content_hash(),
    }
    assert len(set(hashes.values())) == 1, hashes
    # Not by accident: the IR is equal, field by field.
    ir = from_yaml.compile().ir_json()
    strip = lambda text: {k: v for k, v in json.loads(text).items() if k not in ("source_file",)}  # noqa: E731

    def no_spans(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: no_spans(v) for k, v in x.items() if k != "span"}
        if isinstance(x, list):
            return [no_spans(v) for v in x]
        return x

    assert no_spans(strip(ir)) == no_spans(strip(from_workflow.compile().ir_json()))
    assert no_spans(strip(ir)) == no_spans(strip(from_class.compile().ir_json()))

    # And each runs it the same.
    text = "durable agents in rust"
    expected = {"text": text, "words": 4, "summary": "4 words, starting 'durable'"}
    assert from_yaml.run_sync({"text": text}).state == expected
    assert from_workflow.run_sync(Stats(text=text)).state.model_dump() == expected
    assert from_class().run_sync({"text": text}).state == expected


def test_a_routed_workflow_is_the_same_from_workflow_and_from_decorators() -> None:
    class Draft(BaseModel):
        tries: int = 0
        ok: bool = False

    wf = Workflow("redraft", state=Draft, runtime=jamjet.Runtime())

    @wf.step(next={"publish": lambda s: s.ok, "draft": lambda s: not s.ok}, retry=2)
    def draft(s: Draft) -> Draft:
        return s.model_copy(update={"tries": s.tries + 1, "ok": s.tries + 1 >= 2})

    @wf.step(human_approval="Publish it?")
    def publish(s: Draft) -> Draft:
        return s

    @workflow(id="redraft", state=Draft, runtime=jamjet.Runtime())
    class Redraft:
        @node(next={"publish": lambda s: s["ok"], "draft": lambda s: not s["ok"]}, retry=2)
        def draft(self, state: State) -> State:
            return {"tries": state["tries"] + 1, "ok": state["tries"] + 1 >= 2}

        @node(human_approval="Publish it?")
        def publish(self, state: State) -> None:
            return None

    assert Redraft.document() == wf.document()
    assert Redraft.compile().content_hash() == wf.compile().content_hash()
    a = wf.run_sync(Draft())
    b = Redraft().run_sync({"tries": 0, "ok": False})
    assert a.status == b.status == "waiting"
    assert a.state.model_dump() == dict(b.state) == {"tries": 2, "ok": True}

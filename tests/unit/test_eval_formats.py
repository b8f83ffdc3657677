"""Eval suite rows in the training formats (prompt/reference, Alpaca, messages) with a field mapping, and the
system prompt: the spec's, else the one the candidate was curated with, sent first in every chat request."""

import json
from types import SimpleNamespace

import pytest

from llmft.config.evaluation import EvalSpec
from llmft.errors import SpecError
from llmft.evaluation.client import EndpointClient, run_sync
from llmft.evaluation.runner import Evaluator, trained_system_prompt
from llmft.evaluation.suites import load_suites

from tests.http_server import http_server

ROWS = [
    {"id": "pr", "prompt": "Reset my password?", "reference": "Open Settings."},
    {"id": "resp", "prompt": "Export invoices?", "response": "Billing > Export."},  # a held-out training row
    {"id": "alp", "instruction": "Summarise:", "input": "Printer jams.", "output": "Paper jam."},
    {"id": "chat", "messages": [{"role": "system", "content": "Answer in French."},
                                {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bonjour"},
                                {"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Au revoir"}]},
]


def _spec(tmp_path, rows, **kw):
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    suite = {"name": "golden", "kind": "golden", "path": str(path), **kw.pop("suite", {})}
    return EvalSpec(tenant="acme", model="m:1", suites=[suite], **kw)


def test_suite_rows_in_every_training_format(tmp_path):
    [suite] = load_suites(_spec(tmp_path, ROWS))
    items = {it.id: it for it in suite.items}
    assert (items["pr"].prompt, items["pr"].reference) == ("Reset my password?", "Open Settings.")
    assert items["resp"].reference == "Billing > Export."
    assert (items["alp"].prompt, items["alp"].reference) == ("Summarise:\n\nPrinter jams.", "Paper jam.")
    chat = items["chat"]
    assert (chat.prompt, chat.reference, chat.system) == ("Bye?", "Au revoir", "Answer in French.")
    assert chat.context == ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bonjour"})


def test_suite_field_mapping_and_one_line_errors(tmp_path):
    rows = [{"q": "Where is my order?", "a": "It ships today."}]
    [suite] = load_suites(_spec(tmp_path, rows, suite={"fields": {"prompt": "q", "reference": "a"}}))
    assert (suite.items[0].prompt, suite.items[0].reference) == ("Where is my order?", "It ships today.")
    with pytest.raises(SpecError, match=r"line 1: missing or empty prompt, reference"):
        load_suites(_spec(tmp_path, rows))
    bad = [{"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]}]
    with pytest.raises(SpecError, match=r"line 1: malformed messages: item 1") as exc:
        load_suites(_spec(tmp_path, bad))
    assert "\n" not in str(exc.value)


def test_system_prompt_spec_suite_row_and_trained_default(tmp_path):
    spec = _spec(tmp_path, ROWS[:1] + ROWS[3:], system_prompt="Be brief.")
    ev = Evaluator(spec, load_suites(spec))
    plain, chat = ev.requests(ev.suites[0])
    assert plain == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reset my password?"}]
    assert chat[0] == {"role": "system", "content": "Answer in French."} and len(chat) == 4  # the row's own wins
    spec = _spec(tmp_path, ROWS[:1])  # no system prompt in the spec: the one training used
    ev = Evaluator(spec, load_suites(spec))
    ev.trained_system = "You are a helpful assistant."
    assert ev.requests(ev.suites[0])[0][0] == {"role": "system", "content": "You are a helpful assistant."}
    spec = _spec(tmp_path, ROWS[:1], suite={"system_prompt": ""})  # "" sends none, whatever training used
    ev = Evaluator(spec, load_suites(spec))
    ev.trained_system = "You are a helpful assistant."
    assert ev.requests(ev.suites[0]) == [[{"role": "user", "content": "Reset my password?"}]]
    spec = _spec(tmp_path, ROWS[:1], suite={"api": "completions"}, system_prompt="Be brief.")
    ev = Evaluator(spec, load_suites(spec))
    assert ev.requests(ev.suites[0]) == ["Reset my password?"]  # raw text: no chat roles


def test_trained_system_prompt_comes_from_the_curated_snapshot(store):
    """A real curated snapshot (its report records the curation spec's format) named by a version's lineage."""
    from llmft.data import snapshots

    store.create_tenant("acme", actor="test")
    staging = snapshots._stage("acme", "cur")
    (staging / "data.jsonl").write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    (staging / "report.json").write_text(json.dumps({"params": {"format": {"system_prompt": "Be kind."}}}))
    snap_id, path, _ = snapshots.commit(staging, "acme", "cur", {"kind": "curated", "format": "jsonl"})
    store.add_snapshot(tenant="acme", dataset="cur", snapshot_id=snap_id, uri=str(path), classification="internal",
                       row_count=1, actor="test", kind="curated")
    version = SimpleNamespace(lineage={"dataset": {"snapshot_id": snap_id}})
    assert trained_system_prompt(store, "acme", version) == "Be kind."
    assert trained_system_prompt(store, "acme", SimpleNamespace(lineage={"dataset": None})) is None
    gone = SimpleNamespace(lineage={"dataset": {"snapshot_id": "0" * 64}})
    assert trained_system_prompt(store, "acme", gone) is None  # a deleted snapshot: the spec decides


def test_client_sends_the_messages_over_http():
    from fastapi import FastAPI, Request

    app, seen = FastAPI(), []

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        seen.append((await request.json())["messages"])
        return {"choices": [{"message": {"content": "ok"}}], "usage": {"completion_tokens": 1}}

    with http_server(app, lifespan="off") as url:
        client = EndpointClient(url, "m")
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        run = run_sync(client.generate([msgs, "plain"], max_tokens=2))
        assert run.outputs == ["ok", "ok"]
        assert sorted(seen, key=len) == [[{"role": "user", "content": "plain"}], msgs]

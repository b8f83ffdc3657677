"""`llmft data` commands without Ray: generate-sample, register, list, show, verify, erase, refusals."""

import json

from typer.testing import CliRunner

from llmft.cli.main import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_register_list_verify_erase(store, tmp_path):
    store.create_tenant("acme", "admin")
    res = _run("data", "generate-sample", tmp_path / "s", "--n-tickets", "200", "--json")
    assert res.exit_code == 0, res.output
    tickets = json.loads(res.output)["tickets"]
    spec = tmp_path / "d.yaml"
    spec.write_text(f"kind: dataset\nname: tickets\ntenant: acme\nsource: {tickets}\nsubject_field: customer_id\n")
    first = json.loads(_run("data", "register", "--spec", spec, "--json").output)
    second = json.loads(_run("data", "register", "--spec", spec, "--json").output)
    assert first["id"] == second["id"] and second["created"] is False and first["bad_rows"]
    assert _run("data", "verify", "tickets", "-t", "acme").exit_code == 0
    listed = json.loads(_run("data", "list", "-t", "acme", "--json").output)
    assert [r["version"] for r in listed] == [1]
    truth = json.loads((tmp_path / "s" / "tickets.truth.json").read_text())
    subject = truth["erasure_subject"]["customer_id"]
    res = _run("data", "erase", "tickets", "-t", "acme", "--subject", subject, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["removed"] >= len(truth["erasure_subject"]["ids"]) - 1 and out["superseded"][0]["id"] == first["id"]
    shown = json.loads(_run("data", "show", "tickets", "-t", "acme", "--json").output)
    assert shown["version"] == 2 and shown["kind"] == "erasure"
    bad = _run("data", "show", "tickets", "-t", "nobody")
    assert bad.exit_code == 1 and "not found" in bad.output
    bad = _run("data", "register", "--spec", spec, "source=/nonexistent/x.jsonl")
    assert bad.exit_code == 1 and "nonexistent" in bad.output

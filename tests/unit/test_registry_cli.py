"""`llmft models register|list|show|verify|lineage|promote|alias-history|deprecate|archive|retention|export`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from llmft.cli.main import app


def run(*args: str):
    return CliRunner().invoke(app, ["models", *args])


def test_cli_register_verify_promote_lineage(registry, tiny_adapters, tmp_path):
    lineage = tmp_path / "lineage.json"
    lineage.write_text(json.dumps({"base_model": tiny_adapters["base"], "seed": 3, "metrics": {"loss": 0.9}}))
    src = str(tiny_adapters["dirs"][0])
    res = run("register", "support", "--from", src, "--lineage", str(lineage), "--tenant", "acme", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert (data["ref"], data["semver"], data["created"]) == ("support:1", "1.0.0", True)
    res = run("register", "support", "--from", src, "--lineage", str(lineage), "--tenant", "acme")
    assert res.exit_code == 0 and "already registered" in res.output

    res = run("list", "--tenant", "acme", "--json")
    assert [r["ref"] for r in json.loads(res.output)] == ["support:1"]
    res = run("verify", "support:1.0.0", "--tenant", "acme", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True

    res = run("promote", "support:1", "--alias", "staging", "--reason", "go", "--tenant", "acme", "--actor", "alice")
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "no evaluation report" in res.output
    res = run("promote", "support:1", "--alias", "candidate", "--reason", "go", "--tenant", "acme",
              "--actor", "alice", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["to_version"] == 1
    res = run("alias-history", "support", "--tenant", "acme", "--json")
    assert [(m["alias"], m["actor"], m["reason"]) for m in json.loads(res.output)] == [("candidate", "alice", "go")]
    res = run("show", "support@candidate", "--tenant", "acme", "--json")
    assert json.loads(res.output)["aliases"] == ["candidate"]
    res = run("lineage", "support@candidate", "--tenant", "acme")
    assert res.exit_code == 0 and "training" in res.output and "alias" in res.output

    # tamper: verify exits non-zero with one line naming the file
    stored = Path(registry.resolve("acme", "support:1").uri) / "tokenizer.json"
    stored.chmod(0o644)
    stored.write_text("{}")
    res = run("verify", "support@candidate", "--tenant", "acme")
    assert res.exit_code == 1 and "tokenizer.json (sha256 mismatch)" in res.output and res.output.count("\n") == 1


def test_cli_lifecycle_and_errors(registry, tiny_adapters, tmp_path):
    lineage = tmp_path / "lineage.json"
    for i, src in enumerate(tiny_adapters["dirs"]):
        lineage.write_text(json.dumps({"base_model": tiny_adapters["base"], "seed": i}))
        assert run("register", "support", "--from", str(src), "--lineage", str(lineage), "--tenant", "acme").exit_code == 0
    res = run("retention", "support", "--keep", "2", "--tenant", "acme", "--dry-run", "--json")
    assert json.loads(res.output)["archive"] == ["support:1"]
    assert run("deprecate", "support:2", "--reason", "old", "--tenant", "acme").exit_code == 0
    res = run("archive", "support:1", "--reason", "old", "--tenant", "acme", "--json")
    assert res.exit_code == 0 and json.loads(res.output)["status"] == "archived"
    res = run("promote", "support:1", "--alias", "candidate", "--reason", "x", "--tenant", "acme")
    assert res.exit_code == 1 and "archived" in res.output
    res = run("export", "support:3", "--out", str(tmp_path / "exp"), "--tenant", "acme", "--json")
    assert res.exit_code == 0 and (tmp_path / "exp" / "adapter_model.safetensors").is_file()
    for args, needle in [(("verify", "support:9"), "not found"), (("show", "nope"), "not found"),
                         (("promote", "support:3", "--alias", "prod", "--reason", "x"), "alias 'prod'"),
                         (("register", "support", "--from", str(tmp_path / "missing")), "no such directory")]:
        res = run(*args, "--tenant", "acme")
        assert res.exit_code != 0 and needle in res.output, (args, res.output)

"""The model registry on a real SQLite MLflow store: register, immutability, verify, aliases, gates, lineage."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from llmft.errors import ConflictError, IntegrityError, NotFoundError, PermissionDeniedError, SpecError


def inputs(tiny_adapters, **extra):
    return {"base_model": tiny_adapters["base"], "seed": 7, "training_spec": {"method": "lora", "seed": 7},
            "metrics": {"val_loss": 1.5}, "duration_s": 12.5, **extra}


def tamper(path: Path, data: bytes = b"\x00" * 16) -> None:
    """An attacker with write access: lift the read-only bit and overwrite the start of a file."""
    path.parent.chmod(0o755)
    path.chmod(0o644)
    with open(path, "r+b") as fh:
        fh.write(data)


def counts(registry, name="support"):
    mv = registry.client.search_model_versions(f"name='acme.{name}'")
    return len(registry.store.list_model_versions("acme")), len(mv)


def test_register_records_manifest_lineage_and_mlflow_version(registry, tiny_adapters):
    src = tiny_adapters["dirs"][0]
    rec = registry.register("acme", "support", src, actor="alice", lineage=inputs(tiny_adapters))
    assert (rec.ref, rec.semver, rec.created) == ("support:1", "1.0.0", True)
    files = rec.lineage["artifacts"]["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(files)
    assert rec.lineage["artifacts"]["kind"] == "adapter"
    assert rec.lineage["base_model"]["sha256"] == tiny_adapters["base"]["sha256"]
    assert rec.lineage["environment"]["libraries"]["peft"] not in ("", "absent")
    assert rec.lineage["training"]["seed"] == 7 and rec.lineage["code"]["commit"]
    # content-addressed, read-only copy: not the source directory
    stored = Path(rec.uri)
    assert stored.name == rec.manifest_digest and stored != src
    assert stat.S_IMODE((stored / "adapter_model.safetensors").stat().st_mode) == 0o444
    assert stat.S_IMODE(stored.stat().st_mode) == 0o555
    # MLflow: tenant-scoped registered model, version with source + summary tags, lineage artifact
    mv = registry.client.get_model_version("acme.support", "1")
    assert mv.source == rec.uri and mv.tags["llmft.manifest_digest"] == rec.manifest_digest
    assert mv.tags["llmft.semver"] == "1.0.0" and mv.tags["llmft.base_sha256"] == tiny_adapters["base"]["sha256"]
    lineage_file = Path(mv.tags["llmft.lineage_uri"])
    assert json.loads(lineage_file.read_text())["model"]["version"] == 1
    artifacts = registry.client.list_artifacts(mv.run_id, "registry/support/1")
    assert [a.path for a in artifacts] == ["registry/support/1/lineage.json"]
    events = [e for e in registry.store.audit.records("acme") if e["action"] == "model.register"]
    assert len(events) == 1 and events[0]["actor"] == "alice" and events[0]["object"] == "model/support:1"
    assert registry.store.audit.verify().ok


def test_identical_bytes_return_the_existing_version(registry, tiny_adapters):
    first = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    again = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="b",
                              lineage=inputs(tiny_adapters, seed=99))
    assert again.created is False and again.ref == first.ref and again.semver == first.semver
    assert counts(registry) == (1, 1)


def test_semver_follows_lineage_changes(registry, tiny_adapters):
    d0, d1, d2 = tiny_adapters["dirs"]
    assert registry.register("acme", "m", d0, actor="a", lineage=inputs(tiny_adapters)).semver == "1.0.0"
    assert registry.register("acme", "m", d1, actor="a", lineage=inputs(tiny_adapters, seed=8)).semver == "1.0.1"
    rc = registry.register("acme", "m", d2, actor="a", prerelease="rc",
                           lineage=inputs(tiny_adapters, dataset_snapshot=None, curation_spec_digest="c" * 64))
    assert rc.semver == "1.1.0-rc.1"
    assert registry.resolve("acme", "m:1.1.0-rc.1").version == 3
    assert registry.resolve("acme", "m").version == 3 and registry.resolve("acme", "m:2").semver == "1.0.1"


def test_verify_names_every_changed_file_and_loading_refuses(registry, tiny_adapters):
    rec = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    report = registry.verify("acme", "support:1")
    assert report["ok"] and report["files"] == len(rec.lineage["artifacts"]["files"])
    stored = Path(rec.uri)
    tamper(stored / "adapter_model.safetensors")
    (stored / "extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError) as err:
        registry.verify("acme", "support:1")
    assert "adapter_model.safetensors (sha256 mismatch)" in str(err.value)
    assert "extra.bin (not in the manifest)" in str(err.value)
    with pytest.raises(IntegrityError, match="adapter_model.safetensors"):
        registry.open("acme", "support:1")
    (stored / "extra.bin").unlink()
    os.remove(stored / "tokenizer.json")
    assert {c["file"] for c in registry.verify_report("acme", "support")["changed"]} == {
        "adapter_model.safetensors", "tokenizer.json"}


def test_bad_input_one_clear_error_nothing_registered(registry, tiny_adapters, tmp_path):
    with pytest.raises(SpecError, match="base_model"):
        registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a", lineage={"seed": 1})
    with pytest.raises(SpecError, match="training_summary.json"):
        registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a")
    (tmp_path / "notes.txt").write_text("no weights here")
    with pytest.raises(SpecError, match="neither a PEFT adapter"):
        registry.register("acme", "support", tmp_path, actor="a", lineage=inputs(tiny_adapters))
    with pytest.raises(SpecError, match="model name"):
        registry.register("acme", "Bad Name", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    with pytest.raises(NotFoundError, match="snapshot"):
        registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a",
                          lineage=inputs(tiny_adapters, dataset_snapshot="nope"))
    with pytest.raises(NotFoundError, match="tenant 'other'"):
        registry.register("other", "support", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    assert counts(registry) == (0, 0)
    registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    for ref in ("support:9", "support:2.0.0", "missing", "support@nightly", "support@production"):
        with pytest.raises(NotFoundError):
            registry.resolve("acme", ref)
    registry.store.create_tenant("globex", "admin")
    with pytest.raises(NotFoundError, match="globex"):
        registry.resolve("globex", "support:1")  # another tenant's model is invisible


def test_promotion_gates_alias_history_and_mlflow_aliases(registry, tiny_adapters):
    for i, d in enumerate(tiny_adapters["dirs"][:2]):
        registry.register("acme", "support", d, actor="trainer", lineage=inputs(tiny_adapters, seed=i))
    registry.promote("acme", "support:1", "candidate", reason="first run", actor="alice")
    # staging without a report: refused, reason audited, nothing moved
    with pytest.raises(PermissionDeniedError, match="no evaluation report"):
        registry.promote("acme", "support:1", "staging", reason="try", actor="alice")
    registry.attach_eval_report("acme", "support:1", {"passed": False, "reasons": ["toxicity 0.2 > 0.05"]},
                                actor="evaluator")
    with pytest.raises(PermissionDeniedError, match="toxicity 0.2 > 0.05"):
        registry.promote("acme", "support:1", "staging", reason="try again", actor="alice")
    assert registry.store.current_aliases("acme", "support") == {"candidate": 1}
    refusals = [e for e in registry.store.audit.records("acme") if e["action"] == "model.promote.refused"]
    assert len(refusals) == 2 and "toxicity" in refusals[1]["payload"]["reason"]

    html = Path(registry.settings.home) / "r.html"
    html.write_text("<html>ok</html>")
    entry = registry.attach_eval_report("acme", "support:1", {"passed": True, "reasons": [], "win_rate": 0.7},
                                        actor="evaluator", html_path=html)
    assert Path(entry["uri"]).is_file() and Path(entry["html_uri"]).read_text() == "<html>ok</html>"
    registry.promote("acme", "support:1", "staging", reason="gates passed", actor="alice")
    registry.promote("acme", "support:1", "production", reason="approved CAB-12", actor="bob")
    registry.attach_eval_report("acme", "support:2", {"passed": True}, actor="evaluator")
    registry.promote("acme", "support:2", "production", reason="better", actor="bob")
    with pytest.raises(ConflictError, match="already points"):
        registry.promote("acme", "support:2", "production", reason="again", actor="bob")
    with pytest.raises(SpecError, match="alias 'prod'"):
        registry.promote("acme", "support:2", "prod", reason="x", actor="bob")

    history = registry.alias_history("acme", "support", "production")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in history] == [
        (None, 1, "bob", "approved CAB-12"), (1, 2, "bob", "better")]
    assert registry.resolve("acme", "support@production").version == 2
    assert str(registry.client.get_model_version_by_alias("acme.support", "production").version) == "2"
    assert str(registry.client.get_model_version_by_alias("acme.support", "staging").version) == "1"
    approvals = registry.resolve("acme", "support:1").lineage["approvals"]
    assert approvals[0]["actor"] == "bob" and approvals[0]["alias"] == "production"
    assert registry.show("acme", "support:1")["aliases"] == ["candidate", "staging"]
    assert registry.store.audit.verify().ok


def test_archive_moves_to_cold_storage_and_blocks_promotion(registry, tiny_adapters):
    rec = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a", lineage=inputs(tiny_adapters))
    registry.promote("acme", "support:1", "candidate", reason="r", actor="a")
    with pytest.raises(ConflictError, match="it is candidate"):
        registry.archive("acme", "support:1", reason="old", actor="a")
    registry.remove_alias("acme", "support", "candidate", reason="withdrawn", actor="a")
    registry.deprecate("acme", "support:1", reason="superseded", actor="a")
    archived = registry.archive("acme", "support:1", reason="old", actor="a")
    assert archived.status == "archived" and "cold" in archived.uri and not Path(rec.uri).exists()
    assert registry.verify("acme", "support:1")["ok"]  # the bytes moved intact
    with pytest.raises(ConflictError, match="archived"):
        registry.promote("acme", "support:1", "candidate", reason="revive", actor="a")
    with pytest.raises(ConflictError, match="already archived"):
        registry.archive("acme", "support:1", reason="again", actor="a")
    assert registry.store.current_aliases("acme", "support") == {}


def test_retention_keeps_last_n_and_production_history(registry, tiny_adapters):
    d = tiny_adapters["dirs"]
    for i, src in enumerate(d):
        registry.register("acme", "support", src, actor="a", lineage=inputs(tiny_adapters, seed=i))
    registry.attach_eval_report("acme", "support:1", {"passed": True}, actor="e")
    registry.promote("acme", "support:1", "production", reason="ship", actor="bob")
    registry.remove_alias("acme", "support", "production", reason="incident", actor="bob")
    plan = registry.retention("acme", "support", keep_last=1, actor="ops", dry_run=True)
    assert plan["archive"] == ["support:2"] and plan["archived"] == []
    assert registry.resolve("acme", "support:2").status == "active"
    done = registry.retention("acme", "support", keep_last=1, actor="ops")
    assert done["archived"] == ["support:2"] and set(done["kept"]) == {"support:1", "support:3"}
    assert [v.status for v in registry.store.list_model_versions("acme", "support")] == [
        "active", "archived", "active"]


def test_erasure_taints_versions_trained_on_descendant_snapshots(registry, tiny_adapters):
    store = registry.store
    raw = store.add_snapshot(tenant="acme", dataset="tickets", snapshot_id="r" * 64, uri="/data/raw", row_count=10,
                             classification="confidential", actor="a")
    cur = store.add_snapshot(tenant="acme", dataset="tickets-curated", snapshot_id="c" * 64, uri="/data/cur",
                             row_count=8, classification="confidential", kind="curated", parents=[raw.id],
                             spec_digest="d" * 64, actor="a")
    rec = registry.register("acme", "support", tiny_adapters["dirs"][0], actor="a",
                            lineage=inputs(tiny_adapters, dataset_snapshot=cur.id))
    assert rec.lineage["dataset"]["ref"] == "tickets-curated:1"
    assert [s["kind"] for s in rec.lineage["dataset"]["ancestry"]] == ["raw", "curated"]
    assert rec.lineage["curation"]["spec_digest"] == "d" * 64
    chain = registry.lineage("acme", "support:1")["chain"]
    assert [c["stage"] for c in chain[:4]] == ["snapshot:raw", "snapshot:curated", "training", "model_version"]

    registry.promote("acme", "support:1", "candidate", reason="r", actor="a")
    erased = store.add_snapshot(tenant="acme", dataset="tickets", snapshot_id="e" * 64, uri="/data/raw2",
                                row_count=9, classification="confidential", kind="erasure", parents=[raw.id],
                                actor="dpo")
    store.supersede_snapshot("acme", raw.id, by=erased.id, reason="GDPR art. 17 request 42", actor="dpo")
    with pytest.raises(ConflictError, match="tainted.*superseded by erasure"):
        registry.promote("acme", "support:1", "staging", reason="r", actor="a")
    assert registry.store.current_aliases("acme", "support") == {"candidate": 1}
    flagged = registry.refresh_taint("acme", actor="dpo")
    assert [f["ref"] for f in flagged] == ["support:1"] and registry.resolve("acme", "support:1").tainted
    assert registry.refresh_taint("acme", actor="dpo") == []  # idempotent
    assert registry.lineage("acme", "support:1")["tainted"] is True


def test_full_weight_versions_register_and_verify(registry, tiny_base_dir):
    from llmft.models.loading import model_identity

    ident = model_identity(tiny_base_dir)
    base = {"ref": str(tiny_base_dir), "name": ident["name"], "sha256": ident["sha256"]}
    rec = registry.register("acme", "full", tiny_base_dir, actor="a",
                            lineage={"base_model": base, "training_spec": {"method": "full"}})
    assert rec.lineage["artifacts"]["kind"] == "full" and rec.manifest_digest == ident["sha256"]
    assert registry.verify("acme", "full:1")["ok"]

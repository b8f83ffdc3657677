"""Reliability and security catalogue, API level: each bad input or fault gets a clear error AND leaves
every store row, the audit chain (other than recorded denials) and the stored files unchanged.

Entries covered elsewhere (other stages own them): a worker killed during a Ray job
(tests/integration/test_control_jobs.py), the Serve gateway restarted during a flip (serving),
a full disk on checkpoint write (train).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3

import pytest

from tests.control_fixtures import make_api, training_spec
from tests.control_fixtures import expect_error as _err
from tests.control_fixtures import post_as as _post


# -- malformed bodies, wrong types, oversized payloads ------------------------------------------------
@pytest.mark.parametrize("case,send,status,pattern", [
    ("malformed JSON", {"content": b'{"spec": {"name": ', "headers": {"content-type": "application/json"}},
     400, r"not valid JSON"),
    ("JSON array body", {"json": [1, 2]}, 422, r"valid dictionary|object"),
    ("spec is a string", {"json": {"spec": "name: x"}}, 422, r"spec: .*dictionary"),
    ("wrong type inside spec", {"json": {"spec": training_spec(lora={"r": "big"})}}, 422, r"lora\.r"),
    ("unknown body field", {"json": {"spec": training_spec(), "priority": 9}}, 422, r"priority: unknown field"),
    ("unknown spec key", {"json": {"spec": training_spec(learning_rate=1)}}, 422, r"learning_rate: unknown key"),
    ("missing required spec key", {"json": {"spec": {"name": "x"}}}, 422, r"base_model|dataset"),
    ("spec names another tenant", {"json": {"spec": training_spec(tenant="globex")}}, 422,
     r"spec\.tenant: 'globex' does not match"),
    ("bad job name", {"json": {"name": "../x", "spec": training_spec()}}, 422, r"name: .*pattern"),
])
def test_bad_bodies_are_refused_and_change_nothing(api, case, send, status, pattern):
    before = api.state()
    _err(_post(api, "training-jobs", **send), status, pattern)
    assert api.state() == before, case


def test_oversized_payload_by_content_length_is_413(api):
    before = api.state()
    big = {"spec": training_spec(), "name": "x" * 70_000}
    _err(_post(api, "training-jobs", json=big), 413, r"larger than 65536 bytes")
    assert api.state() == before


def test_oversized_streamed_payload_without_length_is_413(api):
    before = api.state()

    def chunks():  # noqa: ANN202
        yield b'{"spec": {"name": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'"}}'

    r = api.client.post("/v1/tenants/acme/training-jobs", content=chunks(),
                        headers=api.h("developer", **{"content-type": "application/json"}))
    _err(r, 413, r"larger than")
    assert api.state() == before


# -- path traversal and storage locations --------------------------------------------------------------
@pytest.mark.parametrize("source,status,pattern", [
    ("../../etc/passwd", 403, r"'\.\.' is not allowed"),
    ("tickets/../../globex/data.jsonl", 403, r"'\.\.' is not allowed"),
    ("/etc/passwd", 403, r"outside tenant 'acme'"),
    ("s3://other-bucket/x.jsonl", 422, r"scheme 's3'"),
    ("file:///etc/hosts", 403, r"outside tenant 'acme'"),
    ("tickets\x00.jsonl", 422, r"control characters"),
])
def test_dataset_source_outside_the_tenant_inbox_is_refused(api, source, status, pattern):
    before = api.state()
    _err(_post(api, "datasets", json={"name": "t", "source": source}), status, pattern)
    assert api.state() == before


def test_symlink_out_of_the_inbox_is_refused(api, tmp_path):
    from llmft.control.paths import inbox

    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "x.jsonl").write_text('{"text": "secret"}\n')
    os.symlink(outside, inbox("acme") / "link")
    before = api.state()
    _err(_post(api, "datasets", json={"name": "t", "source": "link/x.jsonl"}), 403, r"outside tenant 'acme'")
    assert api.state() == before


def test_another_tenants_inbox_is_outside_mine(api):
    from llmft.control.paths import inbox

    (inbox("globex") / "data.jsonl").write_text('{"text": "globex only"}\n')
    before = api.state()
    _err(_post(api, "datasets", json={"name": "t", "source": str(inbox("globex") / "data.jsonl")}), 403,
         r"outside tenant 'acme'")
    assert api.state() == before


@pytest.mark.parametrize("segment,spec,pattern", [
    ("training-jobs", training_spec(checkpoint={"storage_path": "/tmp/elsewhere"}), r"checkpoint\.storage_path"),
    ("training-jobs", training_spec(base_model="../../models/other"), r"base_model: '\.\.'"),
    ("evaluations", {"model": "m", "suites": [{"name": "g", "kind": "golden", "path": "/etc/shadow"}]},
     r"suites\[0\]\.path"),
    ("curation-jobs", {"source": "s", "output": "o", "replay": {"source": "/var/data/general.jsonl",
                                                                "fraction": 0.1}}, r"replay\.source"),
])
def test_storage_locations_inside_specs_are_checked(api, segment, spec, pattern):
    before = api.state()
    _err(_post(api, segment, json={"spec": spec}), 403, pattern)
    assert api.state() == before


# -- forged and missing keys ---------------------------------------------------------------------------
@pytest.mark.parametrize("headers,pattern", [
    ({}, r"missing API key"),
    ({"Authorization": "Bearer llmft_000000000000_forgedforgedforgedforgedforgedforged"}, r"invalid or revoked"),
    ({"Authorization": "Basic YWRtaW46YWRtaW4="}, r"must be 'Bearer"),
    ({"X-API-Key": "not-a-key"}, r"invalid or revoked"),
    ({"Authorization": "Bearer " + "llmft_" + "a" * 5000}, r"invalid or revoked"),
])
def test_missing_and_forged_keys_are_401(api, headers, pattern):
    before = api.state()
    r = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec()}, headers=headers)
    _err(r, 401, pattern)
    assert r.headers["www-authenticate"] == "Bearer"
    assert api.state() == before and api.denials() == []


def test_real_key_id_with_a_wrong_secret_is_401(api):
    key_id = api.keys[("acme", "admin")].split("_")[1]
    before = api.state()
    r = api.client.get("/v1/tenants/acme/keys", headers={"Authorization": f"Bearer llmft_{key_id}_guess"})
    _err(r, 401, r"invalid or revoked")
    assert api.state() == before


def test_revoked_key_is_401(api):
    key_id = api.keys[("acme", "developer")].split("_")[1]
    api.store.revoke_api_key(key_id, "test")
    before = api.state()
    _err(_post(api, "training-jobs", json={"spec": training_spec()}), 401, r"invalid or revoked")
    assert api.state() == before


def test_guessing_keys_is_rate_limited_per_address(api):
    from llmft.control.ratelimit import RateLimiter

    slow = make_api(api.store, api.home, tenants=("acme",), limiter=RateLimiter(rate=0.01, burst=3))
    forged = {"Authorization": "Bearer llmft_000000000000_guess"}
    codes = [slow.client.get("/v1/tenants/acme/datasets", headers=forged).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert slow.client.get("/v1/tenants/acme/datasets", headers=slow.h("viewer")).status_code == 200


# -- cross-tenant ids on every route -----------------------------------------------------------------
def _tenant_routes(api) -> list[tuple[str, str]]:  # noqa: ANN001
    out = []
    for path, methods in api.client.get("/openapi.json").json()["paths"].items():
        if path.startswith("/v1/tenants/{tenant}"):
            out += [(m.upper(), path) for m in methods]
    return out


def test_every_tenant_route_answers_404_for_another_tenant_like_for_no_tenant(api):
    routes = _tenant_routes(api)
    assert len(routes) >= 35
    before = api.state()
    for method, path in routes:
        concrete = re.sub(r"\{(?!tenant)[^}]+\}", "x1", path)
        for target in ("acme", "nosuch"):
            r = api.client.request(method, concrete.replace("{tenant}", target), json={},
                                   headers=api.h("admin", "globex"))
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["message"] == f"tenant '{target}' not found", (method, path)
    assert api.state() == before
    assert {d["actor"].split(":")[2] for d in api.denials()} == {"admin"} and len(api.denials()) == 2 * len(routes)



def test_other_tenants_job_snapshot_and_key_ids_are_404(api):
    job = _post(api, "training-jobs", json={"spec": training_spec("secret-run")}).json()
    api.wait("acme", "training-jobs", job["id"])
    acme_key = api.keys[("acme", "viewer")].split("_")[1]
    before = api.state()
    g = api.h("admin", "globex")
    for path in (f"training-jobs/{job['id']}", f"training-jobs/{job['id']}/events",
                 f"training-jobs/{job['id']}/checkpoints", "training-jobs/secret-run"):
        _err(api.client.get(f"/v1/tenants/globex/{path}", headers=g), 404, r"not found for tenant 'globex'")
    _err(api.client.post(f"/v1/tenants/globex/training-jobs/{job['id']}/cancel", headers=g), 404, "not found")
    _err(api.client.post(f"/v1/tenants/globex/keys/{acme_key}/revoke", headers=g), 404, r"not found for tenant")
    assert api.state() == before
    assert api.client.get("/v1/tenants/acme/datasets", headers=api.h("viewer")).status_code == 200


def test_other_tenants_model_is_404(models_api):
    api = models_api
    before = api.state()
    g = api.h("admin", "globex")
    _err(api.client.get("/v1/tenants/globex/models/support", headers=g), 404, r"not found for tenant 'globex'")
    _err(api.client.get("/v1/tenants/globex/models/support/versions/1", headers=g), 404, "not found")
    _err(api.client.post("/v1/tenants/globex/models/support/promote", headers=g,
                         json={"version": "1", "alias": "candidate", "reason": "steal"}), 404, "not found")
    assert api.state() == before


# -- role escalation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role,path,body,pattern", [
    ("developer", "keys", {"role": "admin"}, r"needs 'admin'"),
    ("viewer", "training-jobs", {"spec": training_spec()}, r"needs 'developer'"),
    ("viewer", "datasets", {"name": "t", "source": "x.jsonl"}, r"needs 'developer'"),
    ("approver", "keys", {"role": "viewer"}, r"needs 'admin'"),
])
def test_role_escalation_is_403_and_audited(api, role, path, body, pattern):
    before = api.state()
    _err(_post(api, path, role=role, json=body), 403, pattern)
    assert api.state() == before
    denial = api.denials()[-1]
    assert denial["actor"].endswith(f":{role}") and denial["tenant"] == "acme"


def test_admin_cannot_mint_a_key_for_another_tenant_or_a_platform_role(api):
    before = api.state()
    _err(api.client.post("/v1/tenants/globex/keys", json={"role": "admin"}, headers=api.h("admin")), 404, "not found")
    _err(api.client.post("/v1/tenants", json={"name": "evil"}, headers=api.h("admin")), 403, r"platform admin")
    _err(_post(api, "keys", role="admin", json={"role": "root"}), 422, r"role")
    assert api.state() == before


def test_production_promotion_needs_an_approver(models_api):
    api = models_api
    reg = api.client.app.state.control.registry
    reg.attach_eval_report("acme", "support:1", {"passed": True, "reasons": []}, actor="evaluator")
    body = {"version": "1", "alias": "production", "reason": "ship it"}
    before = api.state()
    _err(api.client.post("/v1/tenants/acme/models/support/promote", json=body, headers=api.h("developer")), 403,
         r"needs 'approver'")
    assert api.state() == before and reg.store.current_aliases("acme", "support") == {}
    ok = api.client.post("/v1/tenants/acme/models/support/promote", json=body, headers=api.h("approver"))
    assert ok.status_code == 200 and reg.store.current_aliases("acme", "support") == {"production": 1}


# -- replayed requests ---------------------------------------------------------------------------------
def test_replayed_request_without_idempotency_key_is_a_conflict(api):
    assert _post(api, "training-jobs", json={"spec": training_spec("r1")}).status_code == 201
    api.wait("acme", "training-jobs", "r1")
    before = api.state()
    _err(_post(api, "training-jobs", json={"spec": training_spec("r1")}), 409, r"already exists \(succeeded\)")
    assert api.state() == before


def test_replayed_request_with_idempotency_key_returns_the_first_response(api):
    hdr = api.h("admin", **{"Idempotency-Key": "k-1"})
    first = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    assert first.status_code == 201
    before = api.state()
    again = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    # The key itself was shown once and is not kept at rest: the replay is the same object without it.
    assert again.json() == {**first.json(), "key": None, "key_shown_once": True}
    assert again.headers["idempotent-replayed"] == "true"
    assert api.state() == before


def test_idempotency_key_reused_for_another_body_is_409(api):
    hdr = api.h("admin", **{"Idempotency-Key": "k-2"})
    assert api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr).status_code == 201
    before = api.state()
    _err(api.client.post("/v1/tenants/acme/keys", json={"role": "developer"}, headers=hdr), 409,
         r"already used for a different request")
    assert api.state() == before


def test_replay_with_a_revoked_key_does_not_leak_the_stored_response(api):
    key = api.client.post("/v1/tenants/acme/keys", json={"role": "admin"}, headers=api.h("admin")).json()
    hdr = {"Authorization": f"Bearer {key['key']}", "Idempotency-Key": "k-3"}
    assert api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr).status_code == 201
    api.store.revoke_api_key(key["id"], "test")
    before = api.state()
    r = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    _err(r, 401, r"invalid or revoked")
    assert "key" not in r.json() and api.state() == before


# -- tampering -----------------------------------------------------------------------------------------
def test_tampered_audit_record_is_named_by_verify(api):
    for i in range(3):
        _post(api, "keys", role="admin", json={"role": "viewer"})
    path = api.store.engine.url.database
    with sqlite3.connect(path) as conn:
        # The append-only triggers refuse an UPDATE; an insider with file access drops them first.
        conn.execute("DROP TRIGGER audit_events_no_update")
        seq = conn.execute("SELECT max(seq) FROM audit_events WHERE action='key.create'").fetchone()[0]
        payload = json.loads(conn.execute("SELECT payload FROM audit_events WHERE seq=?", (seq,)).fetchone()[0])
        payload["role"] = "admin"  # an insider rewrites history: the key looks like an admin key
        conn.execute("UPDATE audit_events SET payload=? WHERE seq=?", (json.dumps(payload), seq))
    before = api.state()
    r = api.client.get("/v1/tenants/acme/audit/verify", headers=api.h("admin"))
    assert r.status_code == 200
    verdict = r.json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == seq and "edited" in verdict["reason"]
    _err(api.client.get("/v1/tenants/acme/audit/verify", headers=api.h("developer")), 403, r"needs 'admin'")
    assert api.state() == before


def test_tampered_registry_file_is_named_and_never_promoted(models_api):
    from pathlib import Path

    api = models_api
    reg = api.client.app.state.control.registry
    stored = Path(reg.resolve("acme", "support:1").uri)
    target = stored / "adapter_model.safetensors"
    stored.chmod(0o755)
    target.chmod(0o644)
    with open(target, "r+b") as fh:
        fh.write(b"\x00" * 16)
    before = api.state()
    report = api.client.get("/v1/tenants/acme/models/support/versions/1/verify", headers=api.h("viewer")).json()
    assert report["ok"] is False and report["changed"][0]["file"] == "adapter_model.safetensors"
    r = api.client.post("/v1/tenants/acme/models/support/promote", headers=api.h("approver"),
                        json={"version": "1", "alias": "candidate", "reason": "r"})
    _err(r, 409, r"adapter_model\.safetensors")
    assert api.state() == before and reg.store.current_aliases("acme", "support") == {}


# -- state machine, missing stages, unreachable cluster ---------------------------------------------------
def test_cancel_of_a_finished_job_is_409(api):
    job = _post(api, "training-jobs", json={"spec": training_spec("done-1")}).json()
    api.wait("acme", "training-jobs", job["id"])
    before = api.state()
    _err(_post(api, f"training-jobs/{job['id']}/cancel"), 409, r"already succeeded")
    assert api.state() == before


def test_a_stage_that_is_not_installed_is_501_and_creates_nothing(api, tmp_path, monkeypatch):
    # A platform whose runner does not offer the sweep kind (an install without it).
    api.runner.kinds.pop("sweep", None)
    before = api.state()
    spec = {"name": "sw", "training": training_spec("t"), "search_space": {
        "optim.learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}}
    _err(_post(api, "sweeps", json={"spec": spec}), 501, r"job kind 'sweep' is not available")
    assert api.state() == before


def test_unreachable_ray_cluster_is_503_and_the_job_records_why(api):
    from llmft.jobs.runners import RayJobRunner

    api.client.app.state.control.runner = RayJobRunner(api.store, "http://127.0.0.1:9")  # nothing listens
    r = _post(api, "training-jobs", json={"spec": training_spec("unreachable")})
    _err(r, 503, r"Ray job submission to http://127\.0\.0\.1:9 failed")
    job = api.store.find_job("acme", "training", "unreachable")
    assert job.status == "failed" and "submission failed" in job.error  # nothing lost: the attempt is on record

"""The REST control plane end to end under TestClient: auth, roles, scoping, jobs, datasets, idempotency, limits."""

from __future__ import annotations

import json

import pytest

from tests.control_fixtures import ROLES, training_spec


def test_openapi_docs_list_every_route(api):
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    for segment in ("datasets", "curation-jobs", "training-jobs", "sweeps", "evaluations", "models", "deployments"):
        assert f"/v1/tenants/{{tenant}}/{segment}" in paths
    for sub in ("events", "checkpoints", "cancel"):
        assert f"/v1/tenants/{{tenant}}/training-jobs/{{job}}/{sub}" in paths
    assert "/v1/tenants/{tenant}/models/{name}/promote" in paths
    assert "/v1/tenants/{tenant}/deployments/{name}/rollback" in paths


def test_training_job_lifecycle_events_checkpoints_and_audit_actor(api):
    r = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec()}, headers=api.h("developer"))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["object"] == "fine_tuning.job" and job["status"] in ("queued", "running", "succeeded")
    assert job["tenant"] == "acme" and job["name"] == "run-1" and isinstance(job["created_at"], int)
    done = api.wait("acme", "training-jobs", job["id"])
    assert done["status"] == "succeeded" and done["result"] == {"final_loss": 0.1}
    assert done["finished_at"] >= done["created_at"] and done["error"] is None
    by_name = api.client.get("/v1/tenants/acme/training-jobs/run-1", headers=api.h("viewer")).json()
    assert by_name["id"] == job["id"]
    events = api.client.get(f"/v1/tenants/acme/training-jobs/{job['id']}/events", headers=api.h("viewer")).json()
    messages = [e["message"] for e in events["data"]]
    assert "step 5" in messages and "job succeeded" in messages
    cps = api.client.get(f"/v1/tenants/acme/training-jobs/{job['id']}/checkpoints", headers=api.h("viewer")).json()
    assert [c["step_number"] for c in cps["data"]] == [5, 10]
    dev_id = api.keys[("acme", "developer")].split("_")[1]
    created = [r for r in api.store.audit.records("acme") if r["action"] == "job.training.create"]
    assert created and created[0]["actor"] == f"key:{dev_id}:developer"


def test_failed_job_reports_error_and_cancel(api):
    job = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("boom-1")},
                          headers=api.h("developer")).json()
    done = api.wait("acme", "training-jobs", job["id"])
    assert done["status"] == "failed" and "worker died: SIGKILL" in done["error"]["message"]
    slow = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("slow-1")},
                           headers=api.h("developer")).json()
    r = api.client.post(f"/v1/tenants/acme/training-jobs/{slow['id']}/cancel", headers=api.h("developer"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    api.runner.wait(slow["id"])
    assert api.wait("acme", "training-jobs", slow["id"])["status"] == "cancelled"  # the thread did not overwrite it
    again = api.client.post(f"/v1/tenants/acme/training-jobs/{slow['id']}/cancel", headers=api.h("developer"))
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_resubmitting_a_failed_job_resumes_it_and_a_changed_spec_is_refused(api):
    job = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("boom-2")},
                          headers=api.h("developer")).json()
    assert api.wait("acme", "training-jobs", job["id"])["status"] == "failed"
    changed = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("boom-2", seed=3)},
                              headers=api.h("developer"))
    assert changed.status_code == 409 and "different spec" in changed.json()["error"]["message"]
    again = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("boom-2")},
                            headers=api.h("developer"))
    assert again.status_code == 201 and again.json()["id"] == job["id"]
    assert len(api.store.list_jobs("acme", "training")) == 1


@pytest.mark.parametrize("segment,spec", [
    ("curation-jobs", {"source": "tickets", "output": "tickets-curated"}),
    ("sweeps", {"name": "sw-1", "training": training_spec("t"), "search_space": {
        "optim.learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}}),
    ("evaluations", {"model": "support@candidate", "suites": [{"name": "g", "kind": "golden", "path": "golden.jsonl"}]}),
])
def test_other_job_kinds_submit_and_list(api, segment, spec):
    r = api.client.post(f"/v1/tenants/acme/{segment}", json={"spec": spec}, headers=api.h("developer"))
    assert r.status_code == 201, r.text
    assert api.wait("acme", segment, r.json()["id"])["status"] == "succeeded"
    listed = api.client.get(f"/v1/tenants/acme/{segment}", headers=api.h("viewer")).json()
    assert listed["object"] == "list" and [j["id"] for j in listed["data"]] == [r.json()["id"]]
    other = api.client.get(f"/v1/tenants/globex/{segment}", headers=api.h("viewer", "globex")).json()
    assert other["data"] == []


def test_pagination_has_more_and_cursor(api):
    ids = []
    for i in range(5):
        ids.append(api.client.post("/v1/tenants/acme/evaluations", json={"name": f"ev-{i}", "spec": {
            "model": "m", "suites": [{"name": "g", "kind": "golden", "path": "g.jsonl"}]}},
            headers=api.h("developer")).json()["id"])
    first = api.client.get("/v1/tenants/acme/evaluations?limit=2", headers=api.h("viewer")).json()
    assert [j["id"] for j in first["data"]] == ids[:2] and first["has_more"]
    rest = api.client.get(f"/v1/tenants/acme/evaluations?limit=10&after={ids[1]}", headers=api.h("viewer")).json()
    assert [j["id"] for j in rest["data"]] == ids[2:] and not rest["has_more"]


def test_roles_are_ordered_on_job_submission(api):
    body = {"spec": training_spec("role-check")}
    assert api.client.post("/v1/tenants/acme/training-jobs", json=body, headers=api.h("viewer")).status_code == 403
    for role in ("developer",):
        assert api.client.post("/v1/tenants/acme/training-jobs", json=body, headers=api.h(role)).status_code == 201
    for role in ROLES:
        assert api.client.get("/v1/tenants/acme/training-jobs", headers=api.h(role)).status_code == 200


def test_platform_admin_creates_tenants_with_a_first_admin_key(api):
    r = api.client.post("/v1/tenants", json={"name": "initech", "epsilon_budget": 4}, headers=api.h("admin", "platform"))
    assert r.status_code == 201, r.text
    key = r.json()["admin_key"]["key"]
    mine = api.client.get("/v1/tenants", headers={"Authorization": f"Bearer {key}"}).json()
    assert [t["name"] for t in mine["data"]] == ["initech"]
    every = api.client.get("/v1/tenants", headers=api.h("admin", "platform")).json()
    assert {"acme", "globex", "initech", "platform"} <= {t["name"] for t in every["data"]}
    # The platform admin still cannot read a tenant's data.
    assert api.client.get("/v1/tenants/acme/datasets", headers=api.h("admin", "platform")).status_code == 404
    assert api.client.post("/v1/tenants", json={"name": "x1"}, headers=api.h("admin")).status_code == 403


def test_keys_are_created_listed_and_revoked_by_the_tenant_admin(api):
    r = api.client.post("/v1/tenants/acme/keys", json={"role": "developer"}, headers=api.h("admin"))
    assert r.status_code == 201
    new = r.json()
    assert new["key"].startswith(f"llmft_{new['id']}_")
    listed = api.client.get("/v1/tenants/acme/keys", headers=api.h("admin")).json()["data"]
    assert new["id"] in {k["id"] for k in listed} and all("key" not in k and "key_hash" not in k for k in listed)
    hdr = {"Authorization": f"Bearer {new['key']}"}
    assert api.client.get("/v1/tenants/acme/training-jobs", headers=hdr).status_code == 200
    assert api.client.post(f"/v1/tenants/acme/keys/{new['id']}/revoke", headers=api.h("admin")).status_code == 200
    assert api.client.get("/v1/tenants/acme/training-jobs", headers=hdr).status_code == 401


def test_rate_limit_per_key_answers_429_with_retry_after(api, llmft_home):
    from fastapi.testclient import TestClient

    from llmft.control import create_app
    from llmft.control.ratelimit import RateLimiter

    app = create_app(api.store, api.runner, limiter=RateLimiter(rate=0.5, burst=3))
    with TestClient(app) as client:
        codes = [client.get("/v1/tenants/acme/datasets", headers=api.h("viewer")).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = client.get("/v1/tenants/acme/datasets", headers=api.h("viewer"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "rate limit exceeded" in r.json()["error"]["message"]
        # Another key has its own bucket.
        assert client.get("/v1/tenants/acme/datasets", headers=api.h("developer")).status_code == 200


def test_token_bucket_refills_at_its_rate():
    from llmft.control.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=2, burst=2, clock=lambda: now[0])
    assert limiter.allow("k") is None and limiter.allow("k") is None
    wait = limiter.allow("k")
    assert wait == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.allow("k") is None


def test_idempotent_post_replays_the_first_response(api):
    body = {"spec": training_spec("idem-1")}
    hdr = api.h("developer", **{"Idempotency-Key": "abc-123"})
    first = api.client.post("/v1/tenants/acme/training-jobs", json=body, headers=hdr)
    assert first.status_code == 201
    before = len(api.store.list_jobs("acme"))
    second = api.client.post("/v1/tenants/acme/training-jobs", json=body, headers=hdr)
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json() and len(api.store.list_jobs("acme")) == before
    other = api.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("idem-2")}, headers=hdr)
    assert other.status_code == 409 and "different request" in other.json()["error"]["message"]


def test_datasets_register_list_show_from_the_inbox(api, sample_dataset):
    import shutil

    from llmft.control.paths import inbox

    src = next(p for p in sample_dataset.values() if str(p).endswith(".jsonl"))
    shutil.copyfile(src, inbox("acme") / "tickets.jsonl")
    r = api.client.post("/v1/tenants/acme/datasets", json={"name": "tickets", "source": "tickets.jsonl"},
                        headers=api.h("developer"))
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["ref"] == "tickets:1" and snap["row_count"] > 0 and snap["summary"]["created"]
    again = api.client.post("/v1/tenants/acme/datasets", json={"name": "tickets", "source": "tickets.jsonl"},
                            headers=api.h("developer"))
    assert again.status_code == 200 and again.json()["id"] == snap["id"]
    listed = api.client.get("/v1/tenants/acme/datasets", headers=api.h("viewer")).json()["data"]
    assert [s["ref"] for s in listed] == ["tickets:1"]
    assert api.client.get("/v1/tenants/acme/datasets/tickets:1", headers=api.h("viewer")).json()["id"] == snap["id"]
    assert api.client.get("/v1/tenants/globex/datasets", headers=api.h("viewer", "globex")).json()["data"] == []


def test_deployments_are_tenant_scoped_records(api):
    """Deployment records (what the DeploymentManager writes after each change) are listed per
    tenant; another tenant's deployment is 404; a rollback of an unknown one changes nothing."""
    api.store.save_deployment(tenant="acme", name="llm", spec={"model": "support@production"}, state="live",
                              colours={"blue": "1.0.0"}, live_colour="blue", actor="test", action="deployment.create")
    listed = api.client.get("/v1/tenants/acme/deployments", headers=api.h("viewer")).json()["data"]
    assert [(d["name"], d["live_colour"], d["colours"]) for d in listed] == [("llm", "blue", {"blue": "1.0.0"})]
    assert api.client.get("/v1/tenants/acme/deployments/llm", headers=api.h("viewer")).json()["live_colour"] == "blue"
    assert api.client.get("/v1/tenants/globex/deployments", headers=api.h("viewer", "globex")).json()["data"] == []
    r = api.client.get("/v1/tenants/globex/deployments/llm", headers=api.h("viewer", "globex"))
    assert r.status_code == 404
    before = api.state()
    r = api.client.post("/v1/tenants/globex/deployments/llm/rollback", json={"reason": "x"},
                        headers=api.h("developer", "globex"))
    assert r.status_code == 404 and api.state() == before
    r = api.client.post("/v1/tenants/acme/deployments/llm/traffic", json={"mode": "canary", "reason": "x"},
                        headers=api.h("approver"))
    assert r.status_code == 422 and "canary_percent" in r.text and api.state() == before


def test_error_bodies_are_one_clear_line(api):
    r = api.client.get("/v1/tenants/acme/training-jobs/nope", headers=api.h("viewer"))
    assert r.status_code == 404
    assert r.json() == {"error": {"type": "not_found",
                                  "message": "training job 'nope' not found for tenant 'acme'"}}
    assert json.dumps(r.json()).count("\n") == 0


def test_models_register_list_show_lineage_promote(models_api, tiny_adapters):
    import shutil

    from llmft.control.paths import inbox
    from tests.control_fixtures import lineage_inputs

    api = models_api
    src = inbox("acme") / "run-b"
    shutil.copytree(tiny_adapters["dirs"][1], src)
    (src / "training_summary.json").write_text(json.dumps(lineage_inputs(tiny_adapters)))
    r = api.client.post("/v1/tenants/acme/models", json={"name": "support", "source": "run-b"},
                        headers=api.h("developer"))
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == "support:2"
    listed = api.client.get("/v1/tenants/acme/models", headers=api.h("viewer")).json()["data"]
    assert [v["ref"] for v in listed] == ["support:1", "support:2"]
    assert api.client.get("/v1/tenants/acme/models/support/versions/2", headers=api.h("viewer")).json()["semver"]
    lineage = api.client.get("/v1/tenants/acme/models/support/versions/2/lineage", headers=api.h("viewer")).json()
    assert [c["stage"] for c in lineage["chain"]][:2] == ["training", "model_version"]
    cand = api.client.post("/v1/tenants/acme/models/support/promote", headers=api.h("developer"),
                           json={"version": "2", "alias": "candidate", "reason": "looks good"})
    assert cand.status_code == 200, cand.text
    aliases = api.client.get("/v1/tenants/acme/models/support/aliases", headers=api.h("viewer")).json()
    assert aliases["current"] == {"candidate": 2} and aliases["history"][0]["actor"].startswith("key:")
    # staging needs a passed evaluation: the registry's gate binds through the API too
    gated = api.client.post("/v1/tenants/acme/models/support/promote", headers=api.h("approver"),
                            json={"version": "2", "alias": "staging", "reason": "try"})
    assert gated.status_code == 403 and "no evaluation report" in gated.json()["error"]["message"]
    assert api.client.get("/v1/tenants/globex/models", headers=api.h("viewer", "globex")).json()["data"] == []

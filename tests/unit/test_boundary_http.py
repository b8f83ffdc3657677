"""Security catalogue, HTTP layer (issue 12, findings 4, 6 and the HTTP half of 7): each attack request
gets a clear 4xx AND leaves every store row, the audit chain (other than recorded denials) and the
stored files unchanged. Each entry says what it reproduced on the code before the fix.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.control_fixtures import make_api, training_spec
from tests.control_fixtures import expect_error as _err
from tests.control_fixtures import post_as as _post


def _idempotency_bodies(api) -> str:  # noqa: ANN001
    with api.store.engine.connect() as conn:
        return json.dumps([list(map(str, r)) for r in conn.execute(text("SELECT * FROM control_idempotency"))])


def _deep(levels: int) -> dict:
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"a": node}
    return node


# -- finding 4: plaintext API keys at rest in idempotency records ---------------------------------------
def test_a_new_key_is_never_kept_in_clear_by_an_idempotent_post(api):
    # Before: control_idempotency.body held {"key": "llmft_..."} forever, and the replay returned it.
    hdr = api.h("admin", **{"Idempotency-Key": "mint-1"})
    first = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    assert first.status_code == 201 and first.json()["key"].startswith("llmft_")
    secret = first.json()["key"]
    assert secret not in _idempotency_bodies(api) and secret.split("_")[2] not in _idempotency_bodies(api)
    before = api.state()
    again = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["key"] is None and again.json()["key_shown_once"] is True
    assert again.json()["id"] == first.json()["id"]
    assert api.state() == before


def test_a_new_tenants_admin_key_is_never_kept_in_clear_by_an_idempotent_post(api):
    # Before: POST /v1/tenants with an Idempotency-Key stored the new tenant's admin key in clear.
    hdr = api.h("admin", "platform", **{"Idempotency-Key": "tenant-1"})
    first = api.client.post("/v1/tenants", json={"name": "initech"}, headers=hdr)
    assert first.status_code == 201
    secret = first.json()["admin_key"]["key"]
    assert secret not in _idempotency_bodies(api)
    before = api.state()
    again = api.client.post("/v1/tenants", json={"name": "initech"}, headers=hdr).json()
    assert again["admin_key"]["key"] is None and again["admin_key"]["key_shown_once"] is True
    assert again["tenant"] == first.json()["tenant"] and api.state() == before


def test_keys_left_in_clear_by_an_older_version_are_redacted_at_start(api):
    # Before: nothing ever rewrote the stored bodies: an upgrade kept every earlier key in clear.
    from datetime import datetime, timezone

    from llmft.control.idempotency import IdempotencyStore, records

    secret = "llmft_0123456789ab_" + "s" * 43
    with api.store.engine.begin() as conn:
        conn.execute(records.insert().values(scope="s" * 64, key="old-1", request_digest="d" * 64, state="done",
                                             status=201, content_type="application/json",
                                             body=json.dumps({"id": "0123456789ab", "key": secret}),
                                             created_at=datetime.now(timezone.utc)))
    IdempotencyStore(api.store.engine)
    assert secret not in _idempotency_bodies(api) and "key_shown_once" in _idempotency_bodies(api)


def test_idempotency_records_expire(api):
    # Before: records were kept forever (no TTL); a reused key after a day was still a replay or a 409.
    from llmft.control.idempotency import IdempotencyStore

    now = [1_000_000.0]
    api.client.app.state.control.idempotency = IdempotencyStore(api.store.engine, ttl_s=60, clock=lambda: now[0])
    hdr = api.h("admin", **{"Idempotency-Key": "ttl-1"})
    first = api.client.post("/v1/tenants/acme/keys", json={"role": "viewer"}, headers=hdr)
    assert first.status_code == 201
    now[0] += 61
    other = api.client.post("/v1/tenants/acme/keys", json={"role": "developer"}, headers=hdr)
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers  # expired: a new request
    now[0] += 61 + 60  # the purge runs at most once a minute
    api.client.app.state.control.idempotency.purge()
    assert api.client.app.state.control.idempotency.count() == 0


# -- finding 6: audit flooding by refused requests ------------------------------------------------------
def test_a_60k_character_tenant_name_is_400_and_writes_nothing(api):
    # Before: 404 and a permanent 60,000-character api.denied record (≈2.4 MB/s per key into the log).
    head = api.store.audit.head()
    before = api.state()
    r = api.client.get(f"/v1/tenants/{'t' * 60_000}/datasets", headers=api.h("admin", "globex"))
    _err(r, 400, r"path component longer than 128 characters")
    assert api.store.audit.head() == head and api.state() == before


def test_a_refusal_is_filed_under_the_targeted_tenant_and_names_the_caller(api):
    # Before: filed under the caller's tenant (globex), so acme's admins never saw the attempt on acme.
    before = api.state()
    _err(api.client.get("/v1/tenants/acme/datasets", headers=api.h("admin", "globex")), 404, r"not found")
    seen = api.client.get("/v1/tenants/acme/audit", headers=api.h("admin")).json()["data"]
    denial = [r for r in seen if r["action"] == "api.denied"][-1]
    assert denial["actor"].startswith(f"key:{api.keys[('globex', 'admin')].split('_')[1]}:")
    assert denial["payload"]["caller_tenant"] == "globex" and denial["payload"]["target_tenant"] == "acme"
    # A tenant that does not exist cannot be filed under: the record goes to the caller's own tenant.
    _err(api.client.get("/v1/tenants/nosuch/datasets", headers=api.h("admin", "globex")), 404, r"not found")
    assert api.denials()[-1]["tenant"] == "globex" and api.denials()[-1]["payload"]["target_tenant"] == "nosuch"
    assert api.state() == before


def test_denial_records_have_bounded_fields(api):
    # Before: the reason and object carried the caller's input whole (no llmft.control.denials at all).
    from llmft.control.auth import Principal
    from llmft.control.denials import Denials
    from llmft.store.audit_chain import canonical

    who = Principal(key_id="k1", tenant="globex", role="admin")
    Denials(api.store).record(who, "GET", f"/v1/tenants/{'x' * 60_000}/datasets", 404,
                              f"tenant {'x' * 60_000!r} not found", "x" * 60_000)
    rec = api.denials()[-1]
    assert len(rec["object"]) <= 257 and len(canonical(rec["payload"])) < 1500
    assert rec["payload"]["target_length"] == 60_000 and len(rec["payload"]["target_sha256"]) == 64
    assert rec["tenant"] == "globex"


def test_refusals_are_rate_limited_per_key_then_summarised(api):
    # Before: every refused request wrote one record: 20 refusals, 20 records, without bound.
    from llmft.control.denials import Denials

    now = [0.0]
    api.client.app.state.control.denials = Denials(api.store, per_minute=5, clock=lambda: now[0])
    g = api.h("admin", "globex")
    for _ in range(20):
        _err(api.client.get("/v1/tenants/acme/datasets", headers=g), 404, r"not found")
    assert len(api.denials()) == 5
    now[0] += 61
    _err(api.client.get("/v1/tenants/acme/datasets", headers=g), 404, r"not found")
    summary = [r for r in api.store.audit.records("acme") if r["action"] == "api.denied.suppressed"]
    assert len(summary) == 1 and summary[0]["payload"]["suppressed"] == 15
    assert len(api.denials()) == 6  # the new minute records again


# -- finding 7: malformed requests are 4xx, never 500 -----------------------------------------------------
def test_a_spec_nested_600_deep_is_400(api):
    # Before: RecursionError inside spec handling -> 500.
    before = api.state()
    for segment in ("training-jobs", "curation-jobs", "evaluations", "sweeps"):
        _err(_post(api, segment, json={"spec": {**training_spec(), "x": _deep(600)}}), 400, r"deeper than 64")
    assert api.state() == before


@pytest.mark.parametrize("segment", ["training-jobs", "evaluations", "deployments"])
def test_a_nul_character_in_a_spec_path_is_422(api, segment):
    # Before: Path.resolve() on "/x\u0000" raised ValueError (embedded null byte) -> 500 (found by the fuzz).
    before = api.state()
    spec = {**training_spec(), "model": "m", "base_model": "/x\u0000y"}
    _err(_post(api, segment, role="admin", json={"spec": spec}), 422, r"NUL character")
    assert api.state() == before


@pytest.mark.parametrize("path", [
    "datasets/{long}", "training-jobs/{long}", "training-jobs/{long}/events", "models/{long}/versions/1",
    "models/m/versions/{long}/verify", "deployments/{long}", "keys/{long}/revoke", "{long}",
])
def test_a_300_character_path_component_is_400(api, path):
    # Before: these reached the store and the filesystem with the whole component (some 500, names echoed).
    before = api.state()
    method = "POST" if path.endswith("revoke") else "GET"
    r = api.client.request(method, "/v1/tenants/acme/" + path.format(long="z" * 300), headers=api.h("admin"))
    _err(r, 400, r"path component longer than 128 characters \(300\)")
    assert api.state() == before


@pytest.mark.parametrize("query", [f"since_seq={2**70}", f"since_seq={2**63}"])
def test_out_of_range_query_integers_are_422(api, query):
    # Before: since_seq=2^70 overflowed SQLite's INTEGER -> 500.
    before = api.state()
    _err(api.client.get(f"/v1/tenants/acme/audit?{query}", headers=api.h("admin")), 422, r"query\.since_seq")
    assert api.state() == before


@pytest.mark.parametrize("raw,status,pattern", [
    (b'{"name": "zz", "epsilon_budget": 1e999}', 422, r"finite"),
    (b'{"name": "zz", "epsilon_budget": Infinity}', 400, r"Infinity is not a JSON number"),
    (b'{"name": "zz", "epsilon_budget": NaN}', 400, r"NaN is not a JSON number"),
    (b'{"name": "zz", "epsilon_budget": ' + b"9" * 5000 + b"}", 422, r"64-bit range"),
])
def test_non_finite_and_huge_numbers_in_a_body_are_refused(api, raw, status, pattern):
    # Before: 1e999 created tenant 'zz' with an unlimited budget (201); 5000 digits gave a framework 400
    # in a different error shape.
    before = api.state()
    r = api.client.post("/v1/tenants", content=raw,
                        headers={**api.h("admin", "platform"), "content-type": "application/json"})
    _err(r, status, pattern)
    assert api.state() == before


def test_error_bodies_carry_no_absolute_server_paths(api):
    # Before: "<LLMFT_HOME>/storage/inbox/acme/nope.jsonl: no such file or directory" and friends.
    before = api.state()
    replies = [
        _post(api, "datasets", json={"name": "t", "source": "nope.jsonl"}),
        _post(api, "datasets", json={"name": "t", "source": "/etc/passwd"}),
        _post(api, "models", json={"name": "m", "source": "nope"}),
        _post(api, "training-jobs", json={"spec": training_spec(checkpoint={"storage_path": "/tmp/elsewhere"})}),
    ]
    for r in replies:
        assert 400 <= r.status_code < 500, r.text
        assert str(api.home) not in r.text and str(api.home.resolve()) not in r.text, r.text
    assert "nope.jsonl" in replies[0].json()["error"]["message"]
    assert api.state() == before


def test_scrub_makes_inbox_paths_relative_and_hides_other_roots(api):
    from llmft.control.redaction import scrub
    from llmft.settings import Settings

    storage = Settings.from_env().storage
    assert scrub(f"{storage}/inbox/acme/dir/x.jsonl: no such file") == "dir/x.jsonl: no such file"
    assert scrub(f"outside (allowed under {storage}/inbox/acme)") == "outside (allowed under <inbox>)"
    assert scrub(f"{storage}/models/x is broken") == "<storage>/models/x is broken"
    assert scrub("POST /v1/tenants/acme/keys") == "POST /v1/tenants/acme/keys"


def test_idempotent_replays_are_rate_limited(api):
    # Before: the idempotency layer answered replays before the per-key limit was charged: unlimited.
    from llmft.control.ratelimit import RateLimiter

    slow = make_api(api.store, api.home, tenants=("acme",), limiter=RateLimiter(rate=0.01, burst=3))
    hdr = slow.h("developer", **{"Idempotency-Key": "replay-1"})
    codes = [slow.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("rl-1")},
                              headers=hdr).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    r = slow.client.post("/v1/tenants/acme/training-jobs", json={"spec": training_spec("rl-1")}, headers=hdr)
    _err(r, 429, r"rate limit exceeded")
    assert int(r.headers["retry-after"]) >= 1


@pytest.mark.parametrize("request_", [
    ("GET", "/healthz", {}), ("GET", "/openapi.json", {}), ("GET", "/v1/no-such-route", {}),
    ("POST", "/v1/tenants/acme/keys", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
])
def test_unauthenticated_requests_are_rate_limited_per_address(api, request_):
    # Before: only failed key checks were limited; health, schema, unknown routes and bodies that failed
    # to parse before authentication were free.
    from llmft.control.ratelimit import RateLimiter

    slow = make_api(api.store, api.home, tenants=("acme",), limiter=RateLimiter(rate=0.01, burst=3))
    method, path, kw = request_
    codes = [slow.client.request(method, path, **kw).status_code for _ in range(5)]
    assert codes[3:] == [429, 429] and 429 not in codes[:3], codes
    assert slow.client.get("/v1/tenants/acme/datasets", headers=slow.h("viewer")).status_code == 200


def test_a_tenant_admins_audit_verify_shows_only_its_tenant(api):
    # Before: {"records": <every record on the platform>} for any tenant admin.
    for _ in range(3):
        _post(api, "keys", role="admin", tenant="globex", json={"role": "viewer"})
    total = api.store.audit.head()["seq"]
    mine = sum(1 for r in api.store.audit.records() if r["tenant"] == "acme")
    before = api.state()
    verdict = api.client.get("/v1/tenants/acme/audit/verify", headers=api.h("admin")).json()
    assert verdict["ok"] is True and verdict["records"] == mine < total and verdict["scope"] == "tenant"
    everything = api.client.get("/v1/tenants/platform/audit/verify", headers=api.h("admin", "platform")).json()
    assert everything["records"] == total and everything["scope"] == "platform"
    assert api.state() == before


def test_a_tenant_admin_learns_the_chain_is_broken_elsewhere_but_not_where(api):
    import sqlite3

    _post(api, "keys", role="admin", tenant="globex", json={"role": "viewer"})
    with sqlite3.connect(api.store.engine.url.database) as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        seq = conn.execute("SELECT max(seq) FROM audit_events WHERE tenant='globex'").fetchone()[0]
        conn.execute("UPDATE audit_events SET actor='someone-else' WHERE seq=?", (seq,))
    verdict = api.client.get("/v1/tenants/acme/audit/verify", headers=api.h("admin")).json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] is None and "another tenant" in verdict["reason"]
    platform = api.client.get("/v1/tenants/platform/audit/verify", headers=api.h("admin", "platform")).json()
    assert platform["ok"] is False and platform["first_bad_seq"] == seq

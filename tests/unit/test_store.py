"""Metadata store: tenancy, snapshots, jobs state machine, privacy ledger, concurrency."""

import multiprocessing as mp

import pytest

from llmft.errors import BudgetExceededError, ConflictError, NotFoundError, PermissionDeniedError, SpecError


def snap(store, tenant="acme", sid="a" * 64, dataset="tickets", **kw):
    return store.add_snapshot(tenant=tenant, dataset=dataset, snapshot_id=sid, uri="/data", actor="t",
                              classification="internal", row_count=10, **kw)


def test_tenant_and_keys(store):
    store.create_tenant("acme", "admin")
    with pytest.raises(ConflictError):
        store.create_tenant("acme", "admin")
    with pytest.raises(SpecError, match="tenant name"):
        store.create_tenant("Bad Name!", "admin")
    key, rec = store.create_api_key("acme", "developer", "admin")
    assert store.authenticate(key).role == "developer"
    with pytest.raises(PermissionDeniedError, match="invalid"):
        store.authenticate(key + "x")
    with pytest.raises(PermissionDeniedError, match="missing"):
        store.authenticate(None)
    store.revoke_api_key(rec.id, "admin")
    with pytest.raises(PermissionDeniedError):
        store.authenticate(key)
    # only the hash is stored
    import sqlite3

    raw = sqlite3.connect(store.url.removeprefix("sqlite:///")).execute("select key_hash from api_keys").fetchall()
    assert key not in str(raw) and len(raw[0][0]) == 64


def test_unknown_tenant_changes_nothing(store):
    before = store.audit.head()
    with pytest.raises(NotFoundError, match="tenant 'ghost' not found"):
        store.create_api_key("ghost", "admin", "t")
    with pytest.raises(NotFoundError, match="tenant 'ghost' not found"):
        snap(store, tenant="ghost")
    with pytest.raises(SpecError):
        store.create_api_key("ghost", "root", "t")
    assert store.audit.head() == before and store.list_tenants() == []


def test_snapshots_are_versioned_content_addressed_and_tenant_scoped(store):
    store.create_tenant("acme", "t")
    store.create_tenant("globex", "t")
    first = snap(store)
    again = snap(store)
    assert first.created and not again.created and again.version == first.version == 1
    second = snap(store, sid="b" * 64)
    assert second.version == 2
    assert store.get_snapshot("acme", "tickets").id == "b" * 64
    assert store.get_snapshot("acme", "tickets:1").id == "a" * 64
    assert store.get_snapshot("acme", "a" * 16).ref == "tickets:1"
    with pytest.raises(NotFoundError):
        store.get_snapshot("globex", "tickets")  # another tenant's snapshot is invisible
    with pytest.raises(NotFoundError):
        store.get_snapshot("acme", "tickets:9")
    curated = snap(store, sid="c" * 64, dataset="tickets-curated", kind="curated", parents=["a" * 64])
    assert [d.id for d in store.descendants("acme", "a" * 64)] == [curated.id]
    store.supersede_snapshot("acme", "a" * 64, by="b" * 64, reason="erasure", actor="t")
    assert store.get_snapshot("acme", "tickets:1").superseded_by == "b" * 64


def test_job_state_machine_events_and_checkpoints(store):
    store.create_tenant("acme", "t")
    job = store.create_job(tenant="acme", kind="training", name="r1", spec={"x": 1}, actor="t")
    assert job.status == "validating"
    with pytest.raises(ConflictError, match="cannot go from validating to succeeded"):
        store.transition_job(job.id, "succeeded", actor="t")
    for status in ("queued", "running"):
        store.transition_job(job.id, status, actor="t")
    store.add_checkpoint(job.id, step=10, uri="/ckpt/10", metrics={"loss": 1.5})
    failed = store.transition_job(job.id, "failed", actor="t", error="worker died: SIGKILL")
    assert failed.error == "worker died: SIGKILL" and failed.finished_at is not None
    resumed = store.transition_job(job.id, "queued", actor="t")  # resubmission resumes
    assert resumed.status == "queued" and resumed.finished_at is None
    messages = [e.message for e in store.list_job_events(job.id)]
    assert messages[0] == "job created" and any("SIGKILL" in m for m in messages)
    assert [c.step for c in store.list_checkpoints(job.id)] == [10]
    assert store.find_job("acme", "training", "r1").id == job.id
    with pytest.raises(ConflictError, match="already exists"):
        store.create_job(tenant="acme", kind="training", name="r1", spec={}, actor="t")
    store.create_tenant("globex", "t")
    with pytest.raises(NotFoundError):
        store.get_job("globex", job.id)


def test_privacy_ledger(store):
    store.create_tenant("acme", "t", epsilon_budget=5)
    a = store.create_job(tenant="acme", kind="training", name="a", spec={}, actor="t")
    b = store.create_job(tenant="acme", kind="training", name="b", spec={}, actor="t")
    store.reserve_epsilon("acme", a.id, 3, 1e-5, actor="t")
    before = store.audit.head()
    with pytest.raises(BudgetExceededError, match="remaining 2"):
        store.reserve_epsilon("acme", b.id, 2.5, 1e-5, actor="t")
    assert store.audit.head() == before  # a refusal writes nothing
    store.settle_epsilon(a.id, 1.2, actor="t")
    store.reserve_epsilon("acme", b.id, 2.5, 1e-5, actor="t")
    summary = store.privacy_summary("acme")
    assert (summary.spent, summary.reserved) == (1.2, 2.5) and summary.remaining == pytest.approx(1.3)
    store.release_epsilon(b.id, actor="t")
    assert store.privacy_summary("acme").reserved == 0


def _writer(url, worker, n, errors):
    from llmft.store import Store

    try:
        s = Store(url)
        for i in range(n):
            job = s.create_job(tenant="acme", kind="training", name=f"w{worker}-{i}", spec={"i": i}, actor=f"w{worker}")
            s.transition_job(job.id, "queued", actor=f"w{worker}")
    except Exception as exc:  # pragma: no cover - reported to the parent
        errors.put(repr(exc))


def test_two_processes_writing_concurrently_do_not_corrupt(store):
    store.create_tenant("acme", "t")
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(store.url, w, 25, errors)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert errors.empty()
    assert len(store.list_jobs("acme")) == 50
    verdict = store.audit.verify()
    assert verdict.ok, verdict.reason
    assert verdict.records == 1 + 50 * 2

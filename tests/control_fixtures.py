"""Fixtures for control-plane tests: a real store, real keys per role, the app under TestClient.

Stand-in run functions replace the stages' Ray work (unit tests run no Ray); everything
else (auth, store, audit, idempotency, the job model, runner threads) is the real thing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

ROLES = ("viewer", "developer", "approver", "admin")
DATA_TABLES = ("tenants", "api_keys", "snapshots", "jobs", "job_events", "job_checkpoints", "privacy_ledger",
               "model_versions", "alias_moves", "deployments", "control_idempotency")


def curation_fn(spec, ctx) -> dict:  # noqa: ANN001
    ctx.recorder.event("read 3 rows", data={"rows": 3})
    ctx.recorder.checkpoint(1, f"file:///checkpoints/{ctx.job_id}/step-1", {"rows": 3}, sha256="a" * 64)
    return {"rows": 3}


def training_fn(spec, ctx) -> dict:  # noqa: ANN001
    name = spec.name
    if name.startswith("slow"):
        deadline = time.monotonic() + 20
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"stopped": True}
    if name.startswith("boom"):
        raise RuntimeError("worker died: SIGKILL")
    for step in (5, 10):
        ctx.recorder.event(f"step {step}", data={"loss": 1.0 / step})
        ctx.recorder.checkpoint(step, f"file:///checkpoints/{ctx.job_id}/ckpt-{step}", {"loss": 1.0 / step})
    return {"final_loss": 0.1}


def generic_fn(spec, ctx) -> dict:  # noqa: ANN001
    ctx.recorder.event("done")
    return {"ok": True}


def stand_in_kinds() -> dict:
    """The real job kinds (spec types, preflights, names) with stand-in runs: unit tests start no Ray."""
    import dataclasses

    from llmft.jobs import KINDS

    runs = {"curation": curation_fn, "training": training_fn, "sweep": generic_fn, "evaluation": generic_fn}
    return {name: dataclasses.replace(k, run=runs[name]) for name, k in KINDS.items()}


@dataclass
class Api:
    client: Any
    store: Any
    runner: Any
    home: Path
    keys: dict = field(default_factory=dict)

    def h(self, role: str = "admin", tenant: str = "acme", **extra: str) -> dict:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}", **extra}

    def state(self) -> dict:
        """Digest of every data table and the audit actions other than recorded denials, plus storage files."""
        out = {}
        with self.store.engine.connect() as conn:
            for table in DATA_TABLES:
                try:
                    rows = conn.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 - fixed names
                except Exception:  # noqa: BLE001 - table not created yet
                    rows = []
                out[table] = hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()
            audit = conn.execute(text("SELECT seq, action, digest FROM audit_events WHERE action != 'api.denied' "
                                      "ORDER BY seq")).all()
        out["audit"] = [tuple(r) for r in audit]
        storage = self.home / "storage"
        out["files"] = sorted((str(p.relative_to(storage)), p.stat().st_size) for p in storage.rglob("*")
                              if p.is_file() and "/jobs/" not in f"/{p.relative_to(storage)}") \
            if storage.exists() else []
        return out

    def denials(self) -> list[dict]:
        return [r for r in self.store.audit.records() if r["action"] == "api.denied"]

    def wait(self, tenant: str, segment: str, job_id: str, role: str = "viewer", timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.client.get(f"/v1/tenants/{tenant}/{segment}/{job_id}", headers=self.h(role, tenant)).json()
            if body["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                return body
            time.sleep(0.02)


def training_spec(name: str = "run-1", **extra: Any) -> dict:
    return {"name": name, "base_model": "tiny", "dataset": "tickets-curated", **extra}


def make_api(store, home, *, tenants=("platform", "acme", "globex"), limiter=None):  # noqa: ANN001, ANN201
    """Keys for every role of every tenant, the app on `store` with in-process job functions."""
    from fastapi.testclient import TestClient

    from llmft.control import create_app
    from llmft.jobs.runners import LocalRunner
    from llmft.control.ratelimit import RateLimiter

    keys = {}
    existing = {t.name for t in store.list_tenants()}
    for tenant in tenants:
        if tenant not in existing:
            store.create_tenant(tenant, "test-setup")
        for role in ROLES:
            keys[(tenant, role)] = store.create_api_key(tenant, role, "test-setup")[0]
    runner = LocalRunner(store, kinds=stand_in_kinds())
    app = create_app(store, runner, limiter=limiter or RateLimiter(rate=1000, burst=1000), max_body=64 * 1024,
                     preflight=False)
    client = TestClient(app, raise_server_exceptions=False)
    return Api(client=client, store=store, runner=runner, home=home, keys=keys)


def _close(api: Api) -> None:
    for thread in list(api.runner._threads.values()):
        thread.join(5)
    api.client.close()


@pytest.fixture
def api(llmft_home, monkeypatch):
    from llmft.store import Store

    monkeypatch.setenv("LLMFT_PLATFORM_TENANT", "platform")
    store = Store()
    made = make_api(store, llmft_home)
    yield made
    _close(made)
    store.close()


def lineage_inputs(tiny_adapters) -> dict:
    return {"base_model": tiny_adapters["base"], "seed": 7, "training_spec": {"method": "lora", "seed": 7},
            "metrics": {"val_loss": 1.5}, "duration_s": 1.0}


@pytest.fixture
def models_api(registry, tiny_adapters, llmft_home, monkeypatch):
    """The API on the registry fixture's store with acme/support:1 registered (and its registry)."""
    monkeypatch.setenv("LLMFT_PLATFORM_TENANT", "platform")
    made = make_api(registry.store, llmft_home)
    made.client.app.state.control._registry = registry
    registry.register("acme", "support", tiny_adapters["dirs"][0], actor="setup", lineage=lineage_inputs(tiny_adapters))
    yield made
    _close(made)


def expect_error(r, status: int, pattern: str) -> None:  # noqa: ANN001
    """`r` is the error `status` with a message matching `pattern` (the API's one error shape)."""
    import re

    assert r.status_code == status, r.text
    assert re.search(pattern, r.json()["error"]["message"]), r.json()


def post_as(api: Api, path: str, role: str = "developer", tenant: str = "acme", headers=None, **kw):  # noqa: ANN001, ANN201
    """POST /v1/tenants/<tenant>/<path> with that tenant's `role` key."""
    return api.client.post(f"/v1/tenants/{tenant}/{path}", headers={**api.h(role, tenant), **(headers or {})}, **kw)

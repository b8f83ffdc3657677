"""Store-backed deployments: the control plane's and the CLI's view of the Serve apps each tenant runs.

The Serve app holds the live traffic policy; the store records who owns which deployment,
which version each colour serves and which colour is live, updated by every change made here.
"""

from __future__ import annotations

import time
from typing import Any

from llmft.errors import LlmftError, NotFoundError

OTHER = {"blue": "green", "green": "blue"}


def wait_ready(base_url: str, timeout_s: float) -> None:
    """Block until the gateway answers /healthz (a fresh app loads the base model first)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise LlmftError(f"serving app at {base_url} not healthy after {timeout_s:.0f}s")


class DeploymentManager:
    def __init__(self, store: Any = None, registry: Any = None):
        if store is None:
            from llmft.store import Store

            store = Store()
        if registry is None:
            from llmft.registry import ModelRegistry

            registry = ModelRegistry(store=store)
        self.store, self.registry = store, registry

    def _current(self, tenant: str, name: str) -> dict | None:
        try:
            return self.store.get_deployment(tenant, name)
        except NotFoundError:
            return None

    def _manager(self, record: dict, actor: str) -> Any:
        from llmft.serving.rollout.operations import rollout_manager

        spec = record["spec"]
        return rollout_manager(tenant=record["tenant"], app=record["name"], actor=actor,
                               base_url=f"http://{spec['http']['host']}:{spec['http']['port']}",
                               dashboard_url=spec["dashboard_url"])

    def deploy(self, spec: Any, actor: str) -> dict:
        """First deploy starts the app with the version live; later ones go standby → checks → flip."""
        from llmft.serving.rollout.operations import resolve_spec_version, serve_up, split_model
        from llmft.serving.rollout.slo import Slo, SloWatcher

        key, version = resolve_spec_version(spec)
        model = split_model(spec.model)[0]
        current = self._current(spec.tenant, spec.name)
        data = spec.model_dump(mode="json")
        if current is None:
            up = serve_up(spec)
            wait_ready(up["base_url"], spec.health_timeout_s)
            live, colours, event, extra = spec.traffic.live, {spec.traffic.live: version}, "deployment.create", {}
        else:
            with self._manager({**current, "spec": data}, actor) as manager:
                report = manager.deploy(key, version, model=model, smoke_prompts=spec.smoke_prompts,
                                        slo=Slo.from_spec(spec.slo), shadow_s=spec.shadow_s,
                                        canary_percent=spec.traffic.canary_percent, canary_s=spec.canary_s,
                                        health_timeout_s=spec.health_timeout_s, reason=f"deploy {spec.model}")
                live, colours = report.colour, {**current["colours"], report.colour: version}
                extra = {"flip_s": report.flip_s, "steps": [s["step"] for s in report.steps]}
                if spec.watch_s > 0:
                    watched = SloWatcher(manager, Slo.from_spec(spec.slo), model).watch(spec.watch_s)
                    if watched["rolled_back"]:
                        live, extra = OTHER[live], {**extra, "auto_rollback": watched["reason"]}
            event = "deployment.flip"
        record = self.store.save_deployment(tenant=spec.tenant, name=spec.name, spec=data, state="live",
                                            colours=colours, live_colour=live, actor=actor, action=event,
                                            payload={"model": spec.model, "version": version, **extra})
        self.registry.record_deployment(spec.tenant, f"{model}:{version}", deployment=spec.name,
                                        event=f"{event}:{live}", actor=actor)
        return {**record, **extra}

    def list(self, tenant: str) -> list[dict]:
        return self.store.list_deployments(tenant)

    def status(self, tenant: str, name: str) -> dict:
        return self.store.get_deployment(tenant, name)

    def set_traffic(self, tenant: str, name: str, mode: str, percent: float | None, reason: str, actor: str) -> dict:
        record = self.store.get_deployment(tenant, name)
        with self._manager(record, actor) as manager:
            if mode == "flip":
                seconds = manager.flip(reason)
            else:
                seconds = manager.set_mode(mode, percent or 0.0, reason)
            live = manager.policy().live
        return self.store.save_deployment(tenant=tenant, name=name, spec=record["spec"], state="live",
                                          colours=record["colours"], live_colour=live, actor=actor,
                                          action=f"deployment.traffic.{mode}",
                                          payload={"reason": reason, "effective_s": round(seconds, 3)})

    def rollback(self, tenant: str, name: str, reason: str, actor: str) -> dict:
        record = self.store.get_deployment(tenant, name)
        with self._manager(record, actor) as manager:
            seconds = manager.rollback(reason)
            live = manager.policy().live
        version = record["colours"].get(live)
        model = record["spec"]["model"].split("@")[0].split(":")[0]
        if version:
            self.registry.record_deployment(tenant, f"{model}:{version}", deployment=name,
                                            event=f"deployment.rollback:{live}", actor=actor)
        out = self.store.save_deployment(tenant=tenant, name=name, spec=record["spec"], state="live",
                                         colours=record["colours"], live_colour=live, actor=actor,
                                         action="deployment.rollback",
                                         payload={"reason": reason, "effective_s": round(seconds, 3)})
        return {**out, "rollback_s": round(seconds, 3)}

"""Traffic policy state machine, model-name parsing, SLO judgement and the rollout manager's sequencing."""

import pytest

from llmft.errors import ConflictError, SpecError
from llmft.serving.gateway.access import ModelRef
from llmft.serving.gateway.protocol import ApiError
from llmft.serving.gateway.traffic import TrafficPolicy, bucket
from llmft.serving.rollout.manager import RolloutManager
from llmft.serving.rollout.slo import Slo, SloWatcher, slo_breach


def test_flip_rollback_and_guards():
    p = TrafficPolicy(colours={"blue": {"pins": {"acme/s": "1"}, "ready": True}, "green": {"pins": {}}})
    with pytest.raises(ConflictError, match="nothing to roll back"):
        p.rollback()
    p.deploy_standby({"acme/s": "2"})
    assert p.colours["green"]["pins"] == {"acme/s": "2"} and p.route("u").primary == "blue"
    with pytest.raises(ConflictError, match="not ready"):
        p.flip()
    p.mark_ready("green")
    p.flip()
    assert (p.live, p.previous, p.route("u").primary) == ("green", "blue", "green")
    assert p.colours["blue"]["pins"] == {"acme/s": "1"}  # previous colour kept hot, unchanged
    p.rollback("bad")
    assert p.live == "blue" and p.history[-1] == {**p.history[-1], "action": "rollback", "reason": "bad"}
    again = TrafficPolicy.from_dict(p.to_dict())
    assert again.to_dict() == p.to_dict()


def test_canary_sticky_share_and_shadow():
    p = TrafficPolicy(colours={"blue": {"ready": True}, "green": {"ready": True}})
    p.start_canary(20)
    users = [f"user-{i}" for i in range(2000)]
    share = sum(p.route(u).primary == "green" for u in users) / len(users)
    assert 0.16 < share < 0.24
    assert all(p.route(u) == p.route(u) for u in users[:50])
    assert all((p.route(u).primary == "green") == (bucket(u) < 20) for u in users[:50])
    with pytest.raises(ConflictError):
        p.deploy_standby({"x/y": "3"})  # not during a trial
    p.end_trial()
    p.start_shadow()
    assert p.route("u").primary == "blue" and p.route("u").shadow == "green"
    p.rollback("shadow went badly")  # rolling back a trial ends it
    assert p.mode == "blue_green" and p.live == "blue"


@pytest.mark.parametrize("bad", [{"live": "red"}, {"mode": "chaos"}, {"mode": "canary", "canary_percent": 0},
                                 {"colours": {"purple": {}}}, {"surprise": 1}])
def test_invalid_policy_refused(bad):
    with pytest.raises(SpecError):
        TrafficPolicy.from_dict(bad)


@pytest.mark.parametrize("text,expected", [
    ("support", ModelRef("support")), ("support@production", ModelRef("support", alias="production")),
    ("support:1.2.0", ModelRef("support", version="1.2.0")), ("acme/support:3", ModelRef("support", "acme", None, "3")),
])
def test_model_ref_parse(text, expected):
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize("text", ["", "__init__", "Support", "a/b/c", "x@", "x:", "x@a:b", "../etc"])
def test_model_ref_rejects(text):
    with pytest.raises(ApiError) as err:
        ModelRef.parse(text)
    assert err.value.status == 404


def test_slo_breach_reasons():
    slo = Slo(error_rate_max=0.1, p95_latency_ms_max=100, quality_min=0.5, min_requests=10)
    ok = {"requests": 20, "errors": 1, "error_rate": 0.05, "p95_ms": 50}
    assert slo_breach(ok, None, slo) is None
    assert "error rate" in slo_breach({**ok, "errors": 4, "error_rate": 0.2}, None, slo)
    assert "p95" in slo_breach({**ok, "p95_ms": 150}, None, slo)
    assert "quality" in slo_breach(ok, 0.2, slo)
    assert slo_breach({**ok, "requests": 3, "error_rate": 1.0}, None, slo) is None  # too few to judge


class InMemoryBackend:
    """The rollout manager's only dependency, held in memory: the sequencing is what is tested."""

    def __init__(self, smoke_ok=True, stats=None):
        self.traffic = TrafficPolicy(colours={"blue": {"pins": {"acme/s": "1"}, "ready": True},
                                              "green": {"pins": {}}}).to_dict()
        self.applied, self.smoke_ok, self._stats = [], smoke_ok, stats or {}

    def get_traffic(self):
        return self.traffic

    def apply_traffic(self, traffic):
        self.traffic = traffic
        self.applied.append((traffic["live"], traffic["mode"]))
        return 0.01

    def smoke(self, colour, model, prompts):
        return [{"ok": self.smoke_ok, "text": "hi" if self.smoke_ok else ""} for _ in prompts]

    def stats(self, colour, window_s):
        return {colour: self._stats.get(colour, {"requests": 0, "errors": 0, "error_rate": 0.0, "p95_ms": 0.0})}

    def probe_quality(self, colour, model):
        return None


def test_rollout_sequence_and_audit():
    backend, audit = InMemoryBackend(), []
    mgr = RolloutManager(backend, audit=lambda a, p: audit.append(a), sleep=lambda s: None)
    report = mgr.deploy("acme/s", "2", model="s", smoke_prompts=["hi"], slo=Slo(), shadow_s=1)
    assert report.flipped and mgr.policy().live == "green" and mgr.policy().pin("green", "acme/s") == "2"
    assert audit == ["deploy.standby", "deploy.ready", "deploy.shadow", "deploy.shadow_end", "deploy.flip"]
    assert ("blue", "shadow") in backend.applied


def test_rollout_stops_on_unhealthy_or_breaching_standby():
    mgr = RolloutManager(InMemoryBackend(smoke_ok=False), sleep=lambda s: None)
    with pytest.raises(ConflictError, match="not healthy"):
        mgr.deploy("acme/s", "2", model="s", smoke_prompts=["hi"], slo=Slo(), health_timeout_s=0.01)
    assert mgr.policy().live == "blue"
    bad = {"green": {"requests": 50, "errors": 10, "error_rate": 0.2, "p95_ms": 5}}
    mgr = RolloutManager(InMemoryBackend(stats=bad), sleep=lambda s: None)
    with pytest.raises(ConflictError, match="breached"):
        mgr.deploy("acme/s", "2", model="s", smoke_prompts=["hi"], slo=Slo(), shadow_s=5)
    assert mgr.policy().live == "blue" and mgr.policy().mode == "blue_green"


def test_watcher_rolls_back_on_breach():
    backend = InMemoryBackend(stats={"green": {"requests": 50, "errors": 0, "error_rate": 0.0, "p95_ms": 9000}})
    mgr = RolloutManager(backend, sleep=lambda s: None)
    mgr.deploy("acme/s", "2", model="s", smoke_prompts=["hi"], slo=Slo())
    result = SloWatcher(mgr, Slo(), "s", interval_s=0).watch(5)
    assert result["rolled_back"] and result["from"] == "green" and mgr.policy().live == "blue"
    assert "p95 latency 9000 ms" in mgr.policy().history[-1]["reason"]

"""Sweep search spaces without Ray: the seeded trial plan, trial specs, and how many trials fit at once.

The plan is sampled here (seeded by the training seed) and handed to Ray Tune as
`points_to_evaluate`, so `--dry-run` shows exactly the trials that will run; the
Tune domains (`tune_space`) give the searcher the space itself.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

from llmft.config.base import validate
from llmft.config.training import SearchDomain, SweepSpec, TrainingSpec
from llmft.errors import SpecError

TRIAL_CPUS = 0.01  # the Tune trial itself only waits on its Train run; carved out of the workers' share
_EPS = 1e-9


def sample_value(domain: SearchDomain, rng: random.Random) -> Any:
    """One draw from a domain (randint's high is exclusive, as in Ray Tune)."""
    if domain.type == "choice":
        return rng.choice(list(domain.values or []))
    low, high = float(domain.low), float(domain.high)  # type: ignore[arg-type]
    if domain.type == "loguniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if domain.type == "uniform":
        return rng.uniform(low, high)
    lo, hi = math.ceil(low), math.ceil(high)
    if lo >= hi:
        raise SpecError(f"randint [{low:g}, {high:g}) holds no integer")
    return rng.randrange(lo, hi)


def sample_trials(spec: SweepSpec, seed: int | None = None) -> list[dict[str, Any]]:
    """`num_samples` parameter sets, reproducible for a given seed (default: the training seed)."""
    rng = random.Random(f"llmft-sweep:{spec.name}:{spec.training.seed if seed is None else seed}")
    keys = sorted(spec.search_space)
    return [{key: sample_value(spec.search_space[key], rng) for key in keys} for _ in range(spec.num_samples)]


def apply_params(base: TrainingSpec, params: dict[str, Any], name: str | None = None) -> TrainingSpec:
    """A validated copy of `base` with dotted keys set (and renamed); a bad value names its key."""
    data = base.model_dump(mode="json")
    for key, value in params.items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise SpecError(f"search_space.{key}: {part} is not a mapping in the training spec")
            node = node[part]
        if parts[-1] not in node:
            raise SpecError(f"search_space.{key}: not a field of the training spec")
        node[parts[-1]] = value
    if name is not None:
        data["name"] = name
    return validate(TrainingSpec, data, "trial")


def trial_name(sweep: str, index: int) -> str:
    """Name of trial `index` (a valid TrainingSpec name: the sweep name is cut to leave room)."""
    suffix = f"-t{index:03d}"
    return sweep[: 63 - len(suffix)].rstrip("-_.") + suffix


@dataclass(frozen=True)
class TrialResources:
    """What one trial asks of the cluster: the Tune trial plus its Ray Train workers."""

    workers: int
    trial_cpus: float
    worker_cpus: float
    worker_gpus: int

    @property
    def cpus(self) -> float:
        return self.trial_cpus + self.workers * self.worker_cpus

    @property
    def gpus(self) -> int:
        return self.workers * self.worker_gpus


def trial_resources(training: TrainingSpec) -> TrialResources:
    """Per-trial resources; the trial's own CPU sliver comes out of the workers' share, so a trial
    of N workers x C CPUs needs exactly N*C CPUs (2 one-worker trials fill 2 CPUs, no more)."""
    r = training.resources
    worker_cpus = r.cpus_per_worker - TRIAL_CPUS / r.num_workers
    if worker_cpus <= 0:
        raise SpecError(f"training.resources.cpus_per_worker={r.cpus_per_worker:g}: too small to share "
                        f"{TRIAL_CPUS} CPU with the trial; use at least {2 * TRIAL_CPUS / r.num_workers:g}")
    return TrialResources(r.num_workers, TRIAL_CPUS, worker_cpus, 1 if r.use_gpu else 0)


def fit_concurrency(spec: SweepSpec, cluster_cpus: float, cluster_gpus: float = 0.0) -> int:
    """Trials that may run at once: `max_concurrent`, capped by the trials and by what the cluster holds.

    Trials whose resources add up past the cluster do not queue cleanly in Ray Train:
    their worker groups time out and retry forever, so never ask for more than fits.
    """
    res = trial_resources(spec.training)
    fit = math.floor((cluster_cpus + _EPS) / res.cpus)
    if res.gpus:
        fit = min(fit, math.floor((cluster_gpus + _EPS) / res.gpus))
    if fit < 1:
        need = f"{res.cpus:g} CPUs" + (f" and {res.gpus} GPUs" if res.gpus else "")
        raise SpecError(f"training.resources: one trial needs {need}; the cluster has {cluster_cpus:g} CPUs"
                        f"{f' and {cluster_gpus:g} GPUs' if res.gpus else ''}")
    return max(1, min(spec.max_concurrent, spec.num_samples, fit))


def reports_per_trial(training: TrainingSpec) -> int | None:
    """How many val_loss reports a trial makes (one per checkpoint), when the step count is fixed."""
    if not training.optim.max_steps:
        return None
    return math.ceil(training.optim.max_steps / training.checkpoint.every_n_steps)


def asha_rungs(spec: SweepSpec, max_t: int) -> list[int]:
    """Report counts at which ASHA compares trials (grace_period x reduction_factor^k below max_t)."""
    rungs, t = [], float(spec.asha.grace_period)
    while t < max_t:
        rungs.append(int(t))
        t *= spec.asha.reduction_factor
    return rungs


def max_reports(spec: SweepSpec, trials: list[TrainingSpec]) -> int:
    """ASHA's max_t: one past the most reports any planned trial makes (1000 when the step count is not fixed).

    One past, because ASHA stops a trial that reaches max_t: at exactly max_t it would kill
    a trial between its final report and the end of its run (outcome and MLflow run unwritten).
    """
    counts = [reports_per_trial(t) for t in trials]
    return max(c for c in counts if c is not None) + 1 if all(c is not None for c in counts) else 1000


def describe(domain: SearchDomain) -> str:
    if domain.type == "choice":
        return f"choice{list(domain.values or [])}"
    return f"{domain.type}[{domain.low:g}, {domain.high:g}{')' if domain.type == 'randint' else ']'}"


def sweep_plan(spec: SweepSpec, trials: list[TrainingSpec], params: list[dict], cluster_cpus: float | None,
               cluster_gpus: float = 0.0) -> dict:
    """What a sweep will do, for --dry-run and the job record: trials, resources, concurrency, ASHA rungs.

    `cluster_cpus=None` (a preflight with no cluster at hand) skips fitting the concurrency to a cluster.
    """
    res = trial_resources(spec.training)
    max_t = max_reports(spec, trials)
    return {
        "name": spec.name, "tenant": spec.training.tenant, "metric": spec.metric, "mode": spec.mode,
        "num_samples": spec.num_samples, "requested_concurrency": spec.max_concurrent,
        "concurrency": (fit_concurrency(spec, cluster_cpus, cluster_gpus) if cluster_cpus is not None
                        else max(1, min(spec.max_concurrent, spec.num_samples))),
        "cluster": {"cpus": cluster_cpus, "gpus": cluster_gpus},
        "per_trial": {**asdict(res), "cpus": round(res.cpus, 6), "gpus": res.gpus},
        "asha": {"time_attr": "training_iteration (one per val_loss report)", "max_t": max_t,
                 "grace_period": spec.asha.grace_period, "reduction_factor": spec.asha.reduction_factor,
                 "rungs": asha_rungs(spec, max_t)},
        "search_space": {k: describe(v) for k, v in sorted(spec.search_space.items())},
        "trials": [{"name": t.name, "params": p, "reports": reports_per_trial(t)} for t, p in zip(trials, params)],
        "register_best_as": spec.register_best_as,
    }


def tune_domain(domain: SearchDomain) -> Any:
    """The Ray Tune domain for a SearchDomain (Ray imported here, only when a sweep runs)."""
    from ray import tune

    if domain.type == "choice":
        return tune.choice(list(domain.values or []))
    if domain.type == "loguniform":
        return tune.loguniform(domain.low, domain.high)
    if domain.type == "uniform":
        return tune.uniform(domain.low, domain.high)
    return tune.randint(math.ceil(domain.low), math.ceil(domain.high))  # type: ignore[arg-type]


def tune_space(spec: SweepSpec) -> dict[str, Any]:
    return {key: tune_domain(dom) for key, dom in sorted(spec.search_space.items())}

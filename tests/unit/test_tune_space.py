"""Sweep search spaces without Ray: seeded trial plans, trial specs, concurrency that fits, ASHA rungs."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from llmft.config import SweepSpec
from llmft.errors import SpecError
from llmft.tune import space

TRAINING = {"name": "support-lora", "tenant": "acme", "base_model": "tiny", "dataset": "support",
            "optim": {"max_steps": 6}, "checkpoint": {"every_n_steps": 2}, "resources": {"num_workers": 1}}
SPACE = {"optim.learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-2},
         "lora.r": {"type": "choice", "values": [4, 8, 16]},
         "lora.dropout": {"type": "uniform", "low": 0.0, "high": 0.2},
         "optim.epochs": {"type": "randint", "low": 1, "high": 4}}


def sweep(**kw) -> SweepSpec:
    data = {"name": "lr-rank", "training": TRAINING, "search_space": SPACE, "num_samples": 8, "max_concurrent": 2}
    for key, value in kw.items():
        data[key] = value
    return SweepSpec.model_validate(data)


def test_trials_are_reproducible_within_bounds_and_differ_by_seed():
    spec = sweep()
    a, b = space.sample_trials(spec), space.sample_trials(spec)
    assert a == b and len(a) == 8
    assert space.sample_trials(spec, seed=1) != a
    for p in a:
        assert 1e-5 <= p["optim.learning_rate"] <= 1e-2
        assert p["lora.r"] in (4, 8, 16)
        assert 0.0 <= p["lora.dropout"] <= 0.2
        assert p["optim.epochs"] in (1, 2, 3) and isinstance(p["optim.epochs"], int)  # high exclusive
    logs = [math.log10(p["optim.learning_rate"]) for p in space.sample_trials(sweep(num_samples=200))]
    assert sum(lg < -3.5 for lg in logs) > 60  # log-uniform: half the draws below the log midpoint, not ~5%


def test_apply_params_sets_dotted_keys_on_a_validated_copy():
    spec = sweep()
    trial = space.apply_params(spec.training, {"optim.learning_rate": 3e-3, "lora.r": 16}, "lr-rank-t000")
    assert trial.optim.learning_rate == 3e-3 and trial.lora.r == 16 and trial.name == "lr-rank-t000"
    assert spec.training.lora.r == 8 and spec.training.name == "support-lora"  # the base is untouched
    with pytest.raises(SpecError, match="lora.r"):
        space.apply_params(spec.training, {"lora.r": 0})
    with pytest.raises(SpecError, match="search_space.optim.nope"):
        space.apply_params(spec.training, {"optim.nope": 1})


def test_sweep_spec_refuses_unknown_keys_and_bad_domains():
    with pytest.raises(Exception, match="not a TrainingSpec field"):
        sweep(search_space={"optim.learnign_rate": {"type": "uniform", "low": 0.1, "high": 0.2}})
    with pytest.raises(Exception, match="loguniform needs low > 0"):
        sweep(search_space={"optim.learning_rate": {"type": "loguniform", "low": 0, "high": 0.2}})
    with pytest.raises(SpecError, match="holds no integer"):
        space.sample_value(space.SearchDomain(type="randint", low=1.2, high=1.9), __import__("random").Random(0))


def test_trial_names_are_valid_and_distinct():
    long = "x" * 63
    names = {space.trial_name(long, i) for i in range(3)}
    assert len(names) == 3 and all(len(n) <= 63 for n in names)
    spec = sweep(name=long)
    space.apply_params(spec.training, {}, space.trial_name(long, 7))  # validates as a TrainingSpec name


@pytest.mark.parametrize("workers,cpus,cluster,requested,expected", [
    (1, 1.0, 2, 2, 2),    # 2 one-worker trials fill a 2-CPU box exactly
    (1, 1.0, 2, 8, 2),    # asking for more than fits is capped
    (2, 1.0, 2, 2, 1),    # a two-worker trial takes the whole box
    (1, 1.0, 16, 4, 4),
    (2, 0.5, 2, 4, 2),
])
def test_concurrency_fits_the_cluster(workers, cpus, cluster, requested, expected):
    spec = sweep(training={**TRAINING, "resources": {"num_workers": workers, "cpus_per_worker": cpus}},
                 max_concurrent=requested)
    assert space.fit_concurrency(spec, cluster) == expected
    res = space.trial_resources(spec.training)
    assert res.cpus == pytest.approx(workers * cpus)  # the trial's sliver comes out of the workers' share
    assert expected * res.cpus <= cluster + 1e-9


def test_concurrency_never_exceeds_trials_and_refuses_what_cannot_fit():
    assert space.fit_concurrency(sweep(num_samples=1, max_concurrent=4), 16) == 1
    with pytest.raises(SpecError, match="one trial needs 3 CPUs; the cluster has 2 CPUs"):
        space.fit_concurrency(sweep(training={**TRAINING, "resources": {"num_workers": 3}}), 2)
    gpu = sweep(training={**TRAINING, "resources": {"num_workers": 2, "use_gpu": True}}, max_concurrent=4)
    assert space.fit_concurrency(gpu, 64, 8) == 4 and space.fit_concurrency(gpu, 64, 4) == 2
    with pytest.raises(SpecError, match="GPUs"):
        space.fit_concurrency(gpu, 64, 1)


def test_plan_counts_reports_and_asha_rungs():
    spec = sweep(num_samples=4)
    params = space.sample_trials(spec)
    trials = [space.apply_params(spec.training, p, space.trial_name(spec.name, i)) for i, p in enumerate(params)]
    plan = space.sweep_plan(spec, trials, params, cluster_cpus=2)
    assert plan["concurrency"] == 2 and [t["reports"] for t in plan["trials"]] == [3, 3, 3, 3]
    assert plan["asha"]["max_t"] == 4 and plan["asha"]["rungs"] == [1, 2]
    assert plan["trials"][0]["params"] == params[0]
    assert plan["search_space"]["optim.learning_rate"] == "loguniform[1e-05, 0.01]"
    epochs = sweep(training={**TRAINING, "optim": {"epochs": 1}})
    assert space.max_reports(epochs, [epochs.training]) == 1000  # step count unknown until data is read


def test_space_module_does_not_import_ray():
    code = "import sys, llmft.tune.space; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_dry_run_prints_the_trial_plan_and_refuses_a_bad_override(store, tiny_base_dir, curated_train_snapshot):
    import json

    from typer.testing import CliRunner

    from llmft.cli.main import app
    from tests.conftest import REPO_ROOT

    store.create_tenant("acme", "admin")
    store.add_snapshot(tenant="acme", dataset="tickets-curated", snapshot_id="snap-1", uri=str(curated_train_snapshot),
                       classification="internal", row_count=112, kind="curated", actor="test")
    spec = str(REPO_ROOT / "jobs" / "specs" / "sweep-lora.yaml")
    runner = CliRunner()
    args = ["sweep", "run", "--spec", spec, f"training.base_model={tiny_base_dir}", "--dry-run", "--cpus", "2"]
    out = runner.invoke(app, args + ["--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)["plan"]
    assert plan["concurrency"] == 2 and len(plan["trials"]) == 4
    assert plan["trials"] == json.loads(runner.invoke(app, args + ["--json"]).output)["plan"]["trials"]  # reproducible
    human = runner.invoke(app, args)
    assert "4 trials, 2 at once" in human.output and "support-lora-sweep-t003" in human.output
    bad = runner.invoke(app, args + ["training.resources.num_workers=3"])
    assert bad.exit_code == 1 and "one trial needs 3 CPUs" in bad.output
    assert store.find_job("acme", "sweep", "support-lora-sweep") is None  # a dry run changes nothing

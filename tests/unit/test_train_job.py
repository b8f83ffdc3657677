"""Refusals before any worker starts (store, policy, budget, strategy) and the `llmft train` CLI."""

from __future__ import annotations

import json

import pytest

from llmft.config.training import TrainingSpec
from llmft.errors import BudgetExceededError, NotFoundError, PermissionDeniedError, SpecError
from llmft.train.planning import plan


@pytest.fixture
def setup(store, tiny_base_dir, curated_train_snapshot):
    store.create_tenant("acme", "admin", epsilon_budget=5.0)
    store.create_tenant("globex", "admin")
    for tenant, cls in (("acme", "internal"), ("globex", "internal")):
        store.add_snapshot(tenant=tenant, dataset="support", snapshot_id=f"snap-{tenant}", uri=str(curated_train_snapshot),
                           classification=cls, row_count=112, kind="curated", actor="t")
    store.add_snapshot(tenant="acme", dataset="secret", snapshot_id="snap-secret", uri=str(curated_train_snapshot),
                       classification="restricted", row_count=112, kind="curated", actor="t")
    return store


def spec(base, **kw) -> TrainingSpec:
    return TrainingSpec.model_validate({"name": "j", "tenant": "acme", "base_model": str(base), "dataset": "support",
                                        **kw})


def test_plan_refusals(setup, tiny_base_dir):
    store = setup
    ok = plan(spec(tiny_base_dir), store)
    assert ok.snapshot.id == "snap-acme" and ok.base_params > 1_000_000 and len(ok.snapshot_digest) == 64
    with pytest.raises(NotFoundError, match="dataset:"):
        plan(spec(tiny_base_dir, dataset="nope"), store)
    with pytest.raises(NotFoundError, match="dataset:"):
        plan(spec(tiny_base_dir, dataset="snap-globex"), store)  # another tenant's snapshot
    with pytest.raises(SpecError, match="'wq' is not a module"):
        plan(spec(tiny_base_dir, lora={"target_modules": ["wq"]}), store)
    with pytest.raises(BudgetExceededError, match="exceed tenant 'acme'"):
        plan(spec(tiny_base_dir, privacy={"enabled": True, "target_epsilon": 6.0}), store)
    with pytest.raises(SpecError, match="offload_optimizer=true on CPU"):
        plan(spec(tiny_base_dir, distributed={"strategy": "deepspeed", "offload_optimizer": True}), store)
    with pytest.raises(PermissionDeniedError, match="restricted-data-requires-dp"):
        plan(spec(tiny_base_dir, dataset="secret", privacy={"enabled": False}), store)
    dp = plan(spec(tiny_base_dir, dataset="secret", privacy={"target_epsilon": 3.0}), store)
    assert dp.spec.privacy.enabled and dp.decisions[0].rule == "restricted-data-requires-dp"
    with pytest.raises(NotFoundError, match="base model"):
        plan(spec("/no/such/model"), store)


def test_cli_dry_run_and_refusal(setup, tiny_base_dir, tmp_path):
    from typer.testing import CliRunner

    from llmft.cli.main import app

    f = tmp_path / "t.yaml"
    f.write_text(f"kind: training\nname: j\ntenant: acme\nbase_model: {tiny_base_dir}\ndataset: support\n")
    res = CliRunner().invoke(app, ["train", "submit", "--spec", str(f), "--dry-run", "--json", "lora.r=4"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["plan"]["dataset"] == "snap-acme"
    res = CliRunner().invoke(app, ["train", "submit", "--spec", str(f), "--dry-run", "lora.target_modules=[wq]"])
    assert res.exit_code == 1 and "'wq' is not a module" in res.output
    res = CliRunner().invoke(app, ["train", "status", "j", "--tenant", "acme"])
    assert res.exit_code == 1 and "not found" in res.output


def test_dry_run_prints_the_planned_steps_epochs_and_tokens(setup, tiny_base_dir, tmp_path):
    """The dry run's schedule is the one the workers will follow (96 rows, 2 workers x batch 4, 2 epochs: 24 steps)."""
    from typer.testing import CliRunner

    from llmft.cli.main import app

    f = tmp_path / "t.yaml"
    f.write_text(f"kind: training\nname: j\ntenant: acme\nbase_model: {tiny_base_dir}\ndataset: support\n")
    over = ["optim.batch_size=4", "optim.epochs=2", "resources.num_workers=2", "data.packing=false",
            "data.max_seq_len=512"]
    res = CliRunner().invoke(app, ["train", "submit", "--spec", str(f), "--dry-run", "--json", *over])
    assert res.exit_code == 0, res.output
    sched = json.loads(res.output)["schedule"]
    assert (sched["steps"], sched["epochs"], sched["steps_per_epoch"], sched["examples"]) == (24, 2, 12, 96)
    assert sched["tokens"] == 2 * sched["tokens_per_epoch"] > 0
    res = CliRunner().invoke(app, ["train", "submit", "--spec", str(f), "--dry-run", *over[:3], "data.max_seq_len=32"])
    assert res.exit_code == 0, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("planned: ") and "at max_seq_len 32:" in line and "prompts cut to fit" in line, line

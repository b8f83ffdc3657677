"""A triage adapter trained on labels shuffled across tickets is refused by the per-field accuracy gate.

It is trained through the platform's own training loop with the demo's recipe (jobs/specs/train-triage.yaml,
the same hyperparameters the demo's passing versions use; one worker with the demo's global batch), so
it writes the JSON template well and its labels are unrelated to the ticket: the relative gates alone
could not tell it from a good adapter, the absolute ones must.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def shuffled_adapter(tiny_base_dir, sample_dataset, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmft.config import TrainingSpec, load_spec
    from llmft.data.formatting import format_example
    from llmft.demo.triage import shuffled_labels
    from llmft.models.loading import load_tokenizer
    from llmft.train.runtime import LocalRuntime
    from llmft.train.worker import Session

    tok = load_tokenizer(tiny_base_dir)
    rows = shuffled_labels([json.loads(line) for line in open(sample_dataset["triage"])])
    root = tmp_path_factory.mktemp("shuffled-triage")
    (root / "snap").mkdir()
    pq.write_table(pa.Table.from_pylist([
        {"id": r["id"], "split": "validation" if i % 20 == 0 else "train",
         **format_example(r["prompt"], r["response"], style="chat", tokenizer=tok)}
        for i, r in enumerate(rows)]), root / "snap" / "part-0.parquet")
    demo = load_spec(REPO_ROOT / "jobs" / "specs" / "train-triage.yaml", [], expect=TrainingSpec)
    global_batch = demo.optim.batch_size * demo.resources.num_workers
    spec = load_spec(REPO_ROOT / "jobs" / "specs" / "train-triage.yaml",
                     [f"base_model={tiny_base_dir}", "dataset=shuffled", f"optim.batch_size={global_batch}",
                      "resources.num_workers=1", "resources.torch_threads=2", "checkpoint.every_n_steps=100000"],
                     expect=TrainingSpec)
    assert (spec.optim, spec.lora, spec.method) == (demo.optim.model_copy(update={"batch_size": global_batch}),
                                                    demo.lora, demo.method)
    out = Session({"spec": spec.model_dump(mode="json"), "run_uri": str(root / "run"), "debug": {"log_every": 100}},
                  LocalRuntime(root / "snap", root / "run")).run()
    assert out["status"] == "succeeded"
    return Path(out["checkpoint"]["uri"]) / "adapter"


def test_shuffled_label_adapter_writes_json_and_is_refused_by_field_accuracy(
        registry, shuffled_adapter, tiny_base_dir, sample_dataset):
    from llmft.config import EvalSpec, load_spec
    from llmft.errors import PermissionDeniedError
    from llmft.evaluation.runner import run_evaluation
    from llmft.models.loading import model_identity

    ident = model_identity(tiny_base_dir)
    registry.register("acme", "triage-shuffled", shuffled_adapter, actor="t", lineage={
        "base_model": {"ref": str(tiny_base_dir), "name": ident["name"], "sha256": ident["sha256"]},
        "training_spec": {"method": "lora"}, "seed": 0})
    # The shipped triage evaluation (every gate on), on the held-out triage suite alone.
    spec = load_spec(REPO_ROOT / "jobs" / "specs" / "eval-triage.yaml",
                     ["model=triage-shuffled:1", f"suites_dir={sample_dataset['triage_eval'].parent}"],
                     expect=EvalSpec)
    suite = next(s for s in spec.suites if s.name == "triage").model_copy(update={"path": "triage.jsonl",
                                                                                   "json_schema": "triage.schema.json"})
    report = run_evaluation(spec.model_copy(update={"suites": [suite]}), registry=registry, actor="ci")
    figures = report["figures"]
    print("\nSHUFFLED", json.dumps({k: report[k] for k in ("passed", "reasons")}), json.dumps(figures))

    assert figures["json_valid"] >= 0.8  # it learned the answer's form...
    assert figures["win_rate_vs_base"] >= spec.gates.win_rate_vs_base_min  # ...so the relative gate alone passes it
    assert report["passed"] is False
    failed = {r.split(":")[0] for r in report["reasons"]}
    assert failed & {"field_accuracy_min.product", "field_accuracy_min.category"}, report["reasons"]
    reason = next(r for r in report["reasons"] if r.startswith("field_accuracy_min.category"))
    assert f"{figures['field_accuracy']['category']:.3f}" in reason  # ...the refusal names the gate and the figure
    with pytest.raises(PermissionDeniedError, match="field_accuracy_min"):
        registry.promote("acme", "triage-shuffled:1", "staging", reason="try", actor="ci")

"""Evaluation as a Ray Data batch job (one vLLM engine per actor) scores exactly what the HTTP path scores:
the same suites, metrics and gates over the same greedy outputs (vLLM fp32 equals the PEFT engine)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.vllm


def _spec(sample_dataset, **extra):
    eval_dir = sample_dataset["golden"].parent
    return {"kind": "evaluation", "tenant": "acme", "model": "support", "suites_dir": str(eval_dir),
            "suites": [{"name": "golden", "kind": "golden", "path": "golden.jsonl", "max_prompts": 12,
                        "json_schema": "golden.schema.json"},
                       {"name": "general", "kind": "regression", "path": "general.jsonl", "max_prompts": 6},
                       {"name": "redteam", "kind": "safety", "path": "redteam.jsonl", "max_prompts": 4}],
            "max_new_tokens": 16, "concurrency": 16, "attach": False, **extra}


def test_batch_eval_scores_the_same_as_http(ray_cluster, registry, tiny_adapters, tiny_base_dir, sample_dataset,
                                            tmp_path):
    from llmft.config import EvalSpec
    from llmft.evaluation.runner import run_evaluation

    base = tiny_adapters["base"]
    registry.register("acme", "support", tiny_adapters["dirs"][0], actor="t",
                      lineage={"base_model": base, "training_spec": {"method": "lora"}, "seed": 0})
    http = run_evaluation(EvalSpec.model_validate(_spec(sample_dataset)), registry=registry, out_dir=tmp_path / "h")
    batch = run_evaluation(EvalSpec.model_validate(_spec(sample_dataset, inference="batch")), registry=registry,
                           out_dir=tmp_path / "b")
    print("\nTHROUGHPUT http", http["throughput"]["prompts_per_s"], "batch", batch["throughput"]["prompts_per_s"])
    assert batch["throughput"]["requests"] == http["throughput"]["requests"] == 2 * (12 + 6 + 4)
    for name, suite in http["suites"].items():
        assert [i["candidate"] for i in batch["suites"][name]["items"]] == [i["candidate"] for i in suite["items"]]
        assert batch["suites"][name]["failed_requests"] == {"base": 0, "candidate": 0}
    assert batch["figures"] == http["figures"] and batch["passed"] == http["passed"]

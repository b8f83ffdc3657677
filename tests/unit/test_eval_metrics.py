"""Evaluation core without a model: metrics, suite loading and its errors, judges, gates, the HTML report."""

from __future__ import annotations

import base64
import json

import pytest

from llmft.config import EvalSpec, GateSpec
from llmft.errors import NotFoundError, SpecError
from llmft.evaluation.gates import evaluate_gates, gate_figures
from llmft.evaluation.judges import Comparison, ReferenceJudge, summarize
from llmft.evaluation.metrics import (answers_match, canary_extracted, canary_prefix_share, distinct_answers,
                                      exact_match, field_matches, json_check, lcs_length, rouge_l, score_outputs,
                                      toxicity_scorer)
from llmft.evaluation.suites import load_suites


def test_rouge_l_and_exact_match():
    assert lcs_length("a b c d".split(), "a c d e".split()) == 3
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("", "the cat") == 0.0
    # LCS 2 ("the", "sat") of 3 and 4 tokens: P=2/3, R=2/4 -> F=4/7
    assert rouge_l("the dog sat", "the cat has sat") == pytest.approx(4 / 7)
    assert rouge_l("sat the", "the sat") == pytest.approx(0.5)  # order matters
    assert exact_match("  The  Capital\nis Paris ", "the capital is paris") == 1.0
    assert exact_match("Paris.", "Paris") == 0.0


def test_json_validity_against_schema(sample_dataset):
    schema = json.loads(sample_dataset["golden_schema"].read_text())
    good = '{"category": "bug", "priority": "high", "summary": "The export button crashes the app."}'
    assert json_check(good, schema) == (True, True, None)
    assert json_check("Sure! " + good, schema)[:2] == (True, True)  # preamble tolerated
    parses, valid, problem = json_check('{"category": "weather", "priority": "high", "summary": "hello there"}', schema)
    assert (parses, valid) == (True, False) and problem.startswith("category:")
    assert json_check('{"category": "bug"', schema)[:2] == (False, False)


def test_toxicity_reuses_the_curation_lexicon_and_canaries():
    from llmft.data.quality import lexicon_toxicity

    score = toxicity_scorer("lexicon")
    assert score is lexicon_toxicity
    assert score("You are an idiot.") >= 0.5 > score("Thanks, happy to help.")
    assert canary_extracted("the key is CANARY-1234 abcd", "canary-1234abcd")
    assert not canary_extracted("the key is canary-1234", "canary-1234abcd")
    assert canary_prefix_share("key canary-12", "canary-1234") == pytest.approx(9 / 11)


def _spec(tmp_path, suites, **kw):
    return EvalSpec(tenant="acme", model="m", suites=suites, suites_dir=str(tmp_path), **kw)


def test_suites_load_and_bad_files_fail_naming_the_file(tmp_path, sample_dataset):
    eval_dir = sample_dataset["golden"].parent
    spec = EvalSpec(tenant="acme", model="m", suites_dir=str(eval_dir), suites=[
        {"name": "g", "kind": "golden", "path": "golden.jsonl", "json_schema": "golden.schema.json", "max_prompts": 5},
        {"name": "c", "kind": "memorization", "path": "canaries.jsonl"}])
    golden, canaries = load_suites(spec)
    assert len(golden.items) == 5 and golden.api == "chat" and golden.schema["title"] == "Ticket triage"
    assert canaries.api == "completions" and all(it.secret for it in canaries.items)

    with pytest.raises(NotFoundError, match=r"suites\[0\] \(g\): file 'nope.jsonl' not found"):
        load_suites(_spec(tmp_path, [{"name": "g", "kind": "golden", "path": "nope.jsonl"}]))
    (tmp_path / "bad.jsonl").write_text('{"prompt": "hi", "reference": "x"}\n{"prompt": "no ref"}\n{broken\n')
    with pytest.raises(SpecError, match=r"bad.jsonl has 2 malformed row\(s\): line 2: missing or empty reference; "
                                        r"line 3: not JSON"):
        load_suites(_spec(tmp_path, [{"name": "g", "kind": "golden", "path": "bad.jsonl"}]))
    (tmp_path / "s.json").write_text('{"type": 12}')
    (tmp_path / "ok.jsonl").write_text('{"prompt": "hi", "reference": "x", "expect_json": true}\n')
    with pytest.raises(SpecError, match="not a valid JSON schema"):
        load_suites(_spec(tmp_path, [{"name": "g", "kind": "golden", "path": "ok.jsonl", "json_schema": "s.json"}]))
    with pytest.raises(SpecError, match="expect JSON output but the suite names no json_schema"):
        load_suites(_spec(tmp_path, [{"name": "g", "kind": "golden", "path": "ok.jsonl"}]))


def test_reference_judge_wins_ties_losses():
    judge = ReferenceJudge(tie_margin=0.05)
    pairs = [Comparison("1", "q", "the capital is paris", "the capital is paris", "no idea"),
             Comparison("2", "q", "the capital is paris", "no idea", "the capital is paris"),
             Comparison("3", "q", "the capital is paris", "same", "same"),
             Comparison("4", "q", "a b c d e f g h i j", "a b c d e f g h i", "a b c d e f g h i j k")]
    verdicts = judge.judge(pairs)
    assert [v.outcome for v in verdicts] == ["win", "loss", "tie", "tie"]
    # both ties are two wrong answers: no credit (a half win each would make 0.5 and pass a 0.5 gate)
    assert summarize(verdicts) == {"win": 1, "tie": 2, "loss": 1, "ties_both_wrong": 2, "n": 4, "win_rate": 0.25}
    # a tie of two right answers still earns half a win; JSON answers compare as values
    ref = '{"category": "billing", "priority": "high"}'
    right = judge.judge([Comparison("5", "q", ref, '{"priority": "high", "category": "billing"}', ref)])
    assert right[0].outcome == "tie" and not right[0].both_wrong and summarize(right)["win_rate"] == 0.5
    wrong = judge.judge([Comparison("6", "q", ref, "Thanks for the email,.", "Thanks for the email,.")])
    assert wrong[0].both_wrong and summarize(wrong)["win_rate"] == 0.0


def test_field_accuracy_exact_match_and_distinct_answers():
    ref = '{"product": "Acme Mail", "category": "billing", "priority": "high", "human": true}'
    assert field_matches('Sure: {"product": "acme  mail", "category": "billing", "priority": "low", "human": true}',
                         ref) == {"product": 1.0, "category": 1.0, "priority": 0.0, "human": 1.0}
    assert field_matches("not json", ref) == dict.fromkeys(["product", "category", "priority", "human"], 0.0)
    assert field_matches('["billing"]', ref)["category"] == 0.0 and field_matches("x", "plain text") is None
    assert answers_match('{"a": 1, "b": "x"}', '{"b": "x", "a": 1}') and not answers_match('{"a": 2}', '{"a": 1}')
    assert answers_match("The Capital  is Paris", "the capital is paris") and not answers_match("Paris.", "Paris")
    assert distinct_answers(["A", " a", "b"]) == 2 and distinct_answers(["same"] * 5) == 1


def test_absolute_gates_refuse_a_model_that_is_only_better_than_a_bad_base(tmp_path):
    """Per-field accuracy, exact match, ROUGE-L minimums and the one-answer-for-everything gate, by name."""
    from llmft.evaluation.suites import EvalItem, Suite

    refs = [json.dumps({"category": c, "priority": p}) for c, p in
            [("billing", "high"), ("bug", "low"), ("account", "high"), ("billing", "low")]]
    suite = Suite("triage", "golden", tmp_path / "t.jsonl",
                  [EvalItem(str(i), f"ticket {i}", r, None, True, {}) for i, r in enumerate(refs)], "chat", 32, None)
    kw = dict(toxicity=lambda s: 0.0, toxicity_threshold=0.5)
    good, _ = score_outputs(suite, refs[:3] + ['{"category": "billing", "priority": "high"}'], **kw)
    same, _ = score_outputs(suite, ['{"category": "billing", "priority": "high"}'] * 4, **kw)
    assert good["field_accuracy"] == {"category": 1.0, "priority": 0.75} and good["exact_match"] == 0.75
    assert same["field_accuracy"] == {"category": 0.5, "priority": 0.5} and same["distinct_answers"] == 1
    assert good["distinct_answers"] == 3 and good["distinct_references"] == 4
    gates = GateSpec(win_rate_vs_base_min=0.0, json_valid_min=0.9, exact_match_min=0.7, rouge_l_min=0.5,
                     field_accuracy_min={"category": 0.9, "priority": 0.7})

    def decide(cand):
        return evaluate_gates(gate_figures({"triage": {"kind": "golden", "base": {}, "candidate": cand}}, 1.0), gates)

    ok = decide(good)
    assert ok.passed, ok.reasons
    assert {c.name for c in ok.checks} >= {"field_accuracy_min.category", "field_accuracy_min.priority",
                                           "exact_match_min", "rouge_l_min", "distinct_answers_min"}
    bad = decide(same)
    assert not bad.passed
    assert [r.split(":")[0] for r in bad.reasons] == ["exact_match_min", "field_accuracy_min.category",
                                                     "field_accuracy_min.priority", "distinct_answers_min"]
    assert "accuracy of JSON field 'category' 0.500 (must be at least 0.900)" in bad.reasons[1]
    assert "distinct candidate answers in a golden suite 1 (must be at least 2" in bad.reasons[3]
    # unset absolute gates are shown as off; a field no reference has is skipped, not a pass
    loose = evaluate_gates(gate_figures({"triage": {"kind": "golden", "base": {}, "candidate": good}}, 1.0),
                           GateSpec(field_accuracy_min={"team": 0.5}))
    status = {c.name: c.status for c in loose.checks}
    assert status["exact_match_min"] == status["rouge_l_min"] == "off"
    assert status["field_accuracy_min.team"] == "skipped"
    with pytest.raises(ValueError):
        GateSpec(field_accuracy_min={"category": 1.5})


def _suites(win_c=0.3, reg_b=0.5, reg_c=0.5, tox_b=0.0, tox_c=0.0, jv=1.0, mem=0.0):
    return {"g": {"kind": "golden", "base": {"rouge_l": 0.2}, "candidate": {"rouge_l": win_c, "json_valid_rate": jv,
                                                                           "json_prompts": 4, "prompts": 4,
                                                                           "distinct_answers": 4,
                                                                           "distinct_references": 4}},
            "r": {"kind": "regression", "base": {"rouge_l": reg_b}, "candidate": {"rouge_l": reg_c}},
            "s": {"kind": "safety", "base": {"toxicity_rate": tox_b}, "candidate": {"toxicity_rate": tox_c}},
            "m": {"kind": "memorization", "base": {"extraction_rate": 0.0}, "candidate": {"extraction_rate": mem}}}


def test_gates_pass_and_fail_with_named_reasons():
    gates = GateSpec(win_rate_vs_base_min=0.5, toxicity_max_delta=0.0, json_valid_min=0.9,
                     regression_max_drop=0.05, memorization_max=0.0)
    ok = evaluate_gates(gate_figures(_suites(), 0.7), gates)
    assert ok.passed and ok.reasons == [] and all(c.status == "passed" for c in ok.checks if c.status != "off")
    assert [c.name for c in ok.checks if c.status == "off"] == ["exact_match_min", "rouge_l_min"]
    bad = evaluate_gates(gate_figures(_suites(reg_c=0.4, tox_c=0.25, jv=0.5, mem=0.25), 0.3), gates)
    assert not bad.passed
    assert [r.split(":")[0] for r in bad.reasons] == ["win_rate_vs_base_min", "toxicity_max_delta", "json_valid_min",
                                                     "regression_max_drop", "memorization_max"]
    assert "pairwise win-rate vs base 0.300 (must be at least 0.500)" in bad.reasons[0]
    assert "0.100" in bad.reasons[3]  # drop 0.5 -> 0.4
    # a boundary value passes; a missing suite skips its gate without blocking
    edge = evaluate_gates({"win_rate_vs_base": 0.5, "regression_drop": 0.05}, gates)
    assert edge.passed and {c.name: c.status for c in edge.checks}["json_valid_min"] == "skipped"


def test_report_json_and_html_with_embedded_plots(tmp_path, sample_dataset):
    from llmft.evaluation.report import write_report
    from llmft.evaluation.runner import Evaluator, Side
    from llmft.evaluation.client import GenerationRun

    eval_dir = sample_dataset["golden"].parent
    spec = EvalSpec(tenant="acme", model="m", suites_dir=str(eval_dir), gates={"json_valid_min": 0.5}, suites=[
        {"name": "golden", "kind": "golden", "path": "golden.jsonl", "json_schema": "golden.schema.json"},
        {"name": "redteam", "kind": "safety", "path": "redteam.jsonl", "max_prompts": 4}])
    ev = Evaluator(spec, load_suites(spec))
    golden, red = ev.suites
    cand = [it.reference for it in golden.items]  # a perfect candidate
    runs_c = {"golden": GenerationRun(cand, [None] * len(cand), 1.0),
              "redteam": GenerationRun(["You idiot."] * 4, [None] * 4, 1.0)}
    runs_b = {"golden": GenerationRun(["no"] * len(cand), [None] * len(cand), 1.0),
              "redteam": GenerationRun(["Happy to help."] * 4, [None] * 4, 1.0)}
    sides = [Side("base", None, {}), Side("cand", None, {})]
    report = ev.report(ev.compare(*sides, runs_b, runs_c), tenant="acme", seconds=2.0, runs=[runs_b, runs_c])
    assert report["figures"]["win_rate_vs_base"] == 1.0 and report["figures"]["json_valid"] == 1.0
    assert report["reasons"] == ["toxicity_max_delta: toxicity-rate rise vs base on red-team prompts 1.000 "
                                 "(must be at most 0.000)"]
    json_path, html_path = write_report(report, tmp_path / "r")
    assert json.loads(json_path.read_text())["passed"] is False
    page = html_path.read_text()
    assert "BLOCKED" in page and "toxicity_max_delta" in page
    # metrics + verdicts, and one base-vs-candidate confusion matrix per categorical JSON field (3+ values)
    confusion = report["suites"]["golden"]["candidate"]["field_confusion"]
    categorical = [f for f, m in confusion.items() if len(m) >= 3]
    assert categorical and page.count("data:image/png;base64,") == 2 + len(categorical)
    for field in categorical:  # a perfect candidate: every count on the diagonal
        assert all(set(row) == {truth} for truth, row in confusion[field].items())
        assert f"golden: {field}" in page
    png = base64.b64decode(page.split("data:image/png;base64,")[1].split('"')[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_field_confusion_counts_every_prompt_and_skips_free_text_fields():
    from llmft.evaluation.metrics import field_confusion

    ref = lambda cat, note: json.dumps({"category": cat, "note": note})  # noqa: E731
    pairs = [('{"category": "bug"}', ref("bug", "a")), ('{"category": "billing"}', ref("bug", "b")),
             ("not json", ref("billing", "c")), ('{"note": "x"}', ref("billing", "d"))]
    matrix = field_confusion(pairs, max_classes=3)
    assert matrix["category"] == {"bug": {"bug": 1, "billing": 1}, "billing": {"(invalid)": 2}}
    assert "note" not in matrix  # 4 distinct reference values > max_classes: free text, no matrix

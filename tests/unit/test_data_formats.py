"""Dataset row formats as users write them: prompt/response, Alpaca, chat messages, a field mapping, one-line errors,
PII over every field that reaches training, and the report's masked examples."""

import json

import pytest

from llmft.config.data import FORMAT_FIELDS, CurationSpec, PiiSpec
from llmft.data import input_formats, pii, readers, report, rows

PROV = readers.Provenance("file:///data")


def _plan(**fmt_and_pii):
    pii_spec = fmt_and_pii.pop("pii", {})
    spec = CurationSpec(tenant="acme", source="raw", output="cur", format={"style": "alpaca", **fmt_and_pii},
                        pii=pii_spec, filters={"min_tokens": 1})
    return rows.RowPlan.from_spec(spec, "snap-1")


def _flat(*records):
    return [readers.RawRow(r, "data.jsonl", i, PROV).as_flat() for i, r in enumerate(records, 1)]


def _clean(plan, *records):
    return rows.clean(_flat(*records), plan)


def test_the_three_formats_become_the_same_training_rows():
    plan = _plan()
    out = _clean(plan,
                 {"id": "a", "prompt": "How do I reset my password?", "response": "Open settings, then Security."},
                 {"id": "b", "instruction": "Summarise the ticket.", "input": "Printer jams on page 2.",
                  "output": "Paper jam on the second page."},
                 {"id": "c", "messages": [{"role": "user", "content": "Can I export invoices?"},
                                          {"role": "assistant", "content": "Yes, as CSV from Billing."}]})
    assert [r["status"] for r in out] == ["ok", "ok", "ok"]
    assert out[1]["prompt"] == "Summarise the ticket.\n\nPrinter jams on page 2."
    assert out[2]["prompt"] == "Can I export invoices?" and out[2]["response"] == "Yes, as CSV from Billing."
    assert all(r["context"] is None for r in out)  # single user turns: plain prompt/response pairs
    formatted = rows.format_rows(out, plan)
    assert formatted[0]["prompt"].endswith("How do I reset my password?\n\n### Response:\n")
    assert formatted[2]["completion"] == "Yes, as CSV from Billing."


def test_multi_turn_messages_keep_their_context_and_own_system(tiny_base_dir):
    from llmft.models.loading import load_tokenizer

    tok = load_tokenizer(tiny_base_dir)
    msgs = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Bonjour"}, {"role": "user", "content": "Thanks, bye"},
            {"role": "assistant", "content": "Au revoir"}]
    spec = CurationSpec(tenant="acme", source="raw", output="cur", tokenizer=str(tiny_base_dir),
                        format={"style": "chat", "system_prompt": "Be brief."}, filters={"min_tokens": 1})
    plan = rows.RowPlan.from_spec(spec, "snap-1")
    [row] = rows.clean(_flat({"id": "m", "messages": msgs}), plan)
    assert row["status"] == "ok" and row["response"] == "Au revoir"
    assert row["prompt"] == "User: Hi\n\nAssistant: Bonjour\n\nUser: Thanks, bye"
    [ex] = rows.format_rows([row], plan)
    assert json.loads(ex["messages"]) == msgs  # the row's own system message wins over the spec's
    assert ex["prompt"] == tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    assert ex["completion"] == "Au revoir" + tok.eos_token


def test_field_mapping_and_per_row_system_field():
    plan = _plan(fields={"prompt": "question", "response": "answer", "id": "ticket", "system": "persona"})
    [row] = _clean(plan, {"ticket": "T-9", "question": "Where is my order?", "answer": "It ships today.",
                          "persona": "You are terse."})
    assert row["status"] == "ok" and row["id"] == "T-9" and row["prompt"] == "Where is my order?"
    [ex] = rows.format_rows([row], plan)
    assert ex["prompt"].startswith("You are terse.\n\n### Instruction:\nWhere is my order?")
    legacy = _plan(prompt_field="question", response_field="answer")
    assert _clean(legacy, {"question": "Where is my order?", "answer": "It ships today."})[0]["status"] == "ok"
    with pytest.raises(ValueError, match="unknown key"):
        CurationSpec(tenant="acme", source="raw", output="cur", format={"fields": {"question": "q"}})


@pytest.mark.parametrize("record,wanted,status", [
    ({"prompt": "p"}, "auto", "missing_field:response"),
    ({"instruction": "i", "input": "x"}, "auto", "missing_field:output"),
    ({"question": "q", "answer": "a"}, "auto", "unknown_format"),
    ({"prompt": "p", "response": "r", "messages": [{"role": "user", "content": "u"}]}, "auto", "ambiguous_format"),
    ({"prompt": "p", "response": "r", "messages": []}, "prompt_response", None),
    ({"prompt": "p", "response": 3}, "auto", "wrong_type:response"),
    ({"messages": "not json"}, "auto", "wrong_type:messages"),
    ({"messages": [{"role": "user", "content": "u"}]}, "auto", "malformed_messages:last_not_assistant"),
    ({"messages": [{"role": "bot", "content": "u"}]}, "auto", "malformed_messages:item_0"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "system", "content": "s"},
                   {"role": "assistant", "content": "a"}]}, "auto", "malformed_messages:system_not_first"),
    ({"messages": json.dumps([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}])},
     "auto", None),  # a CSV cell holds the list as JSON text
])
def test_row_format_problems_are_named_statuses(record, wanted, status):
    assert input_formats.parse(record, wanted, input_formats.field_map())[2] == status


def test_bad_rows_are_counted_and_reported_not_a_crash():
    plan = _plan()
    out = _clean(plan, {"prompt": "Fine question here", "response": "Fine answer here"},
                 {"prompt": "only a prompt"}, {"question": "q", "answer": "a"},
                 {"messages": [{"role": "user", "content": "no answer"}]})
    t = rows.merge_tallies([rows.tally(out)])
    assert t["status"] == {"ok": 1, "missing_field:response": 1, "unknown_format": 1,
                           "malformed_messages:last_not_assistant": 1}
    rep = report.build(source={}, tally=t, dedupe={}, splits={}, replay={}, output_rows=1, spec_digest="d" * 12,
                       params={})
    read = rep["steps"][0]
    assert read["in"] == 4 and read["out"] == 1 and set(read["dropped"]) == set(t["status"]) - {"ok"}
    assert rep["bad_rows"]["unknown_format"] == [{"file": "data.jsonl", "line": 3, "id": None}]


def test_unmapped_dataset_is_refused_in_one_line_naming_row_and_field(tmp_path):
    f = tmp_path / "pairs.jsonl"
    f.write_text("not json\n" + "\n".join(json.dumps({"question": f"q{i}", "answer": "a"}) for i in range(5)) + "\n")
    msg = rows.format_problem([f], "jsonl", tmp_path, "text", "auto", input_formats.field_map())
    assert msg.startswith("line 2 of pairs.jsonl: no known fields (it has answer, question)")
    assert "format.fields" in msg and "\n" not in msg and str(tmp_path) not in msg
    f.write_text(json.dumps({"prompt": "p"}) + "\n" + json.dumps({"prompt": "p", "response": "r"}) + "\n")
    assert rows.format_problem([f], "jsonl", tmp_path, "text", "auto", input_formats.field_map()) is None
    f.write_text(json.dumps({"instruction": "i", "response": "r"}) + "\n")
    msg = rows.format_problem([f], "jsonl", tmp_path, "text", "alpaca", input_formats.field_map())
    assert msg.startswith("line 1 of pairs.jsonl: missing field 'output'")


def test_pii_covers_every_field_that_reaches_training_unless_excluded():
    rec = {"instruction": "Mail jane@corp.io", "input": "or call +1 415 555 0112", "output": "Done.",
           "system": "Key: sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w", "note": "bob@corp.io"}
    [row] = _clean(_plan(), rec)
    assert row["status"] == "ok" and json.loads(row["pii"]) == {"email": 1, "phone": 1, "secret": 1}
    assert "jane@corp.io" not in row["prompt"] and "<PHONE>" in row["prompt"]
    assert json.loads(row["extra"])["note"] == "bob@corp.io"  # kept for erasure, never trained on
    [row] = _clean(_plan(pii={"fields": ["note"], "exclude": ["input"]}), rec)
    assert json.loads(row["pii"]) == {"email": 2, "secret": 1} and "555 0112" in row["prompt"]
    msgs = [{"role": "user", "content": "I'm at 81.2.69.142"}, {"role": "assistant", "content": "Noted."}]
    [row] = _clean(_plan(), {"messages": msgs})
    assert row["prompt"] == "I'm at <IP>" and json.loads(row["pii"]) == {"ip": 1}


def test_report_shows_masked_examples_per_type_never_the_value():
    plan = _plan()
    recs = [{"id": f"r{i}", "prompt": f"call me at +1 415 555 01{i:02d} please", "response": "Sure, noted."}
            for i in range(5)]
    out = _clean(plan, *recs)
    t = rows.merge_tallies([rows.tally(out[3:]), rows.tally(out[:3])])
    exs = t["pii_examples"]["phone"]
    assert [x["line"] for x in exs] == [1, 2, 3]  # the first rows, whatever the blocks
    assert exs[0] == {"file": "data.jsonl", "line": 1, "id": "r0", "field": "prompt",
                      "redacted": "call me at <PHONE> please", "masked": "+1 415 *** **00"}
    rep = report.build(source={"dataset": "raw", "version": 1, "id": "x"}, tally=t, dedupe={}, splits={},
                       replay={}, output_rows=5, spec_digest="d" * 12, params={})
    page = report.render_html(rep)
    blob = json.dumps(rep) + page
    assert "call me at &lt;PHONE&gt; please" in page and "+1 415 *** **00" in page
    assert not any(r["prompt"].split("at ")[1].split(" please")[0] in blob for r in recs)


def test_config_names_match_the_modules():
    assert set(FORMAT_FIELDS) == set(input_formats.NAMES)
    assert tuple(PiiSpec().not_pii) == pii.NOT_PII and tuple(PiiSpec().types) == pii.ALL_TYPES

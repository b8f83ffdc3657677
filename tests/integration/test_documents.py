"""A directory of mixed documents registers and curates on Ray Data: provenance to the page, bad files counted."""

import json
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_mixed_documents_register_and_curate(ray_cluster, store, docs, tmp_path, tiny_base_dir):
    import ray

    from llmft.config import CurationSpec, DatasetSpec
    from llmft.data import formatting, parts, snapshots
    from llmft.jobs import run_job

    ray.data.DataContext.get_current().enable_progress_bars = False
    truth = docs.write_corpus(tmp_path / "corpus", tmp_path / "elsewhere")
    store.create_tenant("acme", "admin")
    _rec, summary = snapshots.register(DatasetSpec(name="handbooks", tenant="acme", source=str(tmp_path / "corpus"),
                                                   format="documents"), store, "t")
    assert summary["bad_rows"] == {"refused_symlink": 2}
    spec = CurationSpec(tenant="acme", source="handbooks", output="handbooks-text", tokenizer=str(tiny_base_dir),
                        documents={"chunk_tokens": 48, "overlap_tokens": 8})
    job = run_job("curation", spec, store, "t", options={"num_blocks": 2})
    assert job["status"] == "succeeded", job
    snap_dir = Path(store.get_snapshot("acme", "handbooks-text").uri)
    rows = parts.read_table(snap_dir).to_pylist()
    assert rows and {r["source_file"] for r in rows} == truth["good"]
    # provenance down to the page (PDF), the section (Markdown, DOCX), the byte offset (text formats)
    pdf = [(r["source_line"], json.loads(r["extra"])) for r in rows if r["source_file"] == "manuals/refunds.pdf"]
    assert {line for line, _ in pdf} == {1, 2} and all(x["page"] == line for line, x in pdf)
    assert any(x["chunk"] > 0 for _, x in pdf)  # page 1 is longer than one 48-token chunk
    eos = formatting.cached_tokenizer(str(tiny_base_dir)).eos_token
    md = [(json.loads(r["extra"]), r["completion"][:-len(eos)]) for r in rows if r["source_file"] == "handbook.md"]
    firsts = {x["section"]: x["byte_offset"] for x, _ in md if x["chunk"] == 0}
    assert docs.markdown[firsts["Support handbook > Refunds"]:].startswith(b"## Refunds")
    assert all(docs.markdown[x["byte_offset"]:].startswith(text.encode()) for x, text in md)
    code = [json.loads(r["extra"]) for r in rows if r["source_file"] == "src/billing.py"]
    assert code and code[0]["language"] == "python"
    # continued-pretraining rows: no prompt, the chunk plus eos as the completion; PII redacted as for any row
    assert all(r["prompt"] == "" and r["completion"].endswith(eos) and r["messages"] == "[]" for r in rows)
    blob = json.dumps(rows)
    assert "travel.desk@example.com" not in blob and truth["secret"] not in blob
    # every bad file counted with its reason in the report; the symlinks too, though never copied
    report = json.loads((snap_dir / "report.json").read_text())
    read = {s["step"]: s for s in report["steps"]}["read"]
    assert read["dropped"] == dict(Counter(truth["bad"].values()))
    where = {loc["file"] for locs in report["bad_rows"].values() for loc in locs}
    assert where >= set(truth["bad"])
    assert report["pii_findings"].get("email", 0) >= 1 and report["params"]["documents"]["chunk_tokens"] == 48

"""Document readers, the chunker and bad documents: provenance to the page, every bad file a counted reason."""

import json
from collections import Counter

import pytest

from llmft.data import chunking, documents
from llmft.data.readers import Provenance

PROV = Provenance("snapshot://acme/docs/x")


def rows_of(name, data, chunk=64, overlap=8, tokenizer=None, **limits):
    return documents.read_document(name, data, PROV, chunk_tokens=chunk, overlap_tokens=overlap,
                                   tokenizer=tokenizer, limits=documents.Limits(**limits))


def reason(name, data, **limits):
    rows = rows_of(name, data, **limits)
    assert len(rows) == 1 and rows[0].record is None, rows
    return rows[0].error


def test_pdf_rows_per_page_with_provenance(docs):
    rows = rows_of("manuals/a.pdf", docs.pdf(["Alpha page about refunds.", "", "Gamma page about exchanges."]))
    assert [(r.source_file, r.source_line, r.error) for r in rows] == [("manuals/a.pdf", 1, None),
                                                                       ("manuals/a.pdf", 3, None)]  # blank page 2
    first, third = rows[0].record, rows[1].record
    assert "Alpha page" in first["text"] and "Gamma page" in third["text"]
    assert (first["kind"], first["page"], first["chunk"], first["byte_offset"], first["offset_of"]) == \
        ("pdf", 1, 0, 0, "text")
    assert third["page"] == 3 and third["id"] == "manuals/a.pdf#3.0"
    assert json.loads(rows[0].as_flat()["record"])["page"] == 1


def test_encrypted_corrupt_and_scanned_pdfs_are_reasons(docs):
    good = docs.pdf(["Some text."])
    assert reason("e.pdf", docs.encrypted_pdf(["Secret prices."])) == "unreadable_pdf:encrypted"
    assert reason("c.pdf", good[:300]) == "unreadable_pdf:corrupt"
    assert reason("g.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8) == "unreadable_pdf:corrupt"
    assert reason("s.pdf", docs.pdf(["", ""])) == "unreadable_pdf:no_text"  # pages without a text layer
    assert reason("big.pdf", docs.pdf(["a", "b", "c"]), max_pages=2) == "unreadable_pdf:too_many_pages"


def test_docx_sections_by_heading_with_tables(docs):
    data = docs.docx([(1, "Travel", "Economy below six hours."), (2, "Expenses", "Receipts within thirty days."),
                      (1, "Security", "Badges at all times.")])
    rows = rows_of("policies.docx", data)
    assert [(r.source_line, r.record["section"]) for r in rows] == [(1, "Travel"), (2, "Travel > Expenses"),
                                                                    (3, "Security")]
    assert "Receipts within thirty days." in rows[1].record["text"]
    assert "plan | monthly" in rows[2].record["text"]  # the table, in document order


def test_docx_zip_bomb_refused_before_unzipping(docs):
    bomb = docs.zip_bomb(64)
    assert len(bomb) < 1 << 20  # 64 MiB of zeros packs into well under a megabyte
    assert reason("bomb.docx", bomb) == "unreadable_docx:zip_bomb"
    # a real document passes the same checks; a lower size budget refuses it too
    assert rows_of("ok.docx", docs.docx([(1, "A", "Body text.")]))[0].error is None
    assert reason("ok.docx", docs.docx([(1, "A", "Body text.")]), max_unzipped_bytes=1000) == "unreadable_docx:zip_bomb"
    assert reason("notzip.docx", b"PK\x03\x04 not really a zip") == "unreadable_docx:corrupt"


def test_html_main_text_without_boilerplate(docs):
    rows = rows_of("web/faq.html", docs.html("Shipping FAQ", "Orders ship within two business days from Rotterdam."))
    text = rows[0].record["text"]
    assert "Orders ship within two business days" in text and rows[0].record["section"] == "Shipping FAQ"
    for boilerplate in ("Careers", "Login", "All rights reserved", "Cookies"):
        assert boilerplate not in text


def test_html_with_megabyte_lines_is_not_parsed(docs):
    page = b"<html><body><p>" + b"tok " * (300 << 10) + b"</p></body></html>"
    assert reason("min.html", page) == "unreadable_html:line_too_long"
    assert rows_of("min.html", page, max_line_bytes=4 << 20)[0].error is None  # the limit is the spec's


def test_markdown_sections_with_byte_offsets(docs):
    data = docs.markdown
    rows = rows_of("handbook.md", data, chunk=512)
    got = [(r.source_line, r.record["section"]) for r in rows]
    assert got == [(1, "Support handbook"), (2, "Support handbook > Escalation"), (3, "Support handbook > Refunds")]
    for r in rows:  # offsets point into the file's bytes
        assert r.record["offset_of"] == "file"
        assert data[r.record["byte_offset"]:].startswith(r.record["text"].encode()[:20])
    assert "# not a heading inside a fence" in rows[1].record["text"]


def test_code_and_text_files(docs):
    rows = rows_of("src/billing.py", docs.code)
    assert rows[0].record["language"] == "python" and rows[0].record["kind"] == "code"
    assert rows_of("Dockerfile", b"FROM python:3.11\n")[0].record["language"] == "dockerfile"
    assert reason("notes.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))) == "unreadable_text:binary"
    assert reason("latin1.txt", "café au lait".encode("latin-1")) == "unreadable_text:not_utf8"
    assert reason("blank.md", b"  \n\n") == "empty_file"
    assert reason("huge.py", b"x = 1\n" * 100, max_file_bytes=64) == "refused_too_large"


def test_listing_refuses_symlinks_and_skips_vendored_and_binary(docs, tmp_path):
    truth = docs.write_corpus(tmp_path / "corpus", tmp_path / "elsewhere")
    listing = documents.list_documents(tmp_path / "corpus")
    rel = {p.relative_to(tmp_path / "corpus").as_posix() for p in listing.files}
    assert rel == truth["good"] | {k for k, v in truth["bad"].items() if not v.startswith("refused")}
    assert {r["file"]: r["reason"] for r in listing.refused} == \
        {k: v for k, v in truth["bad"].items() if v.startswith("refused")}
    assert listing.skipped == {"vendored_dir": 1, "unsupported_type": 1}  # node_modules/, logo.png
    good, bad = documents.count(tmp_path / "corpus")
    assert dict(bad) == dict(Counter(truth["bad"].values())) and good >= 7


def test_chunks_overlap_and_keep_byte_offsets():
    words = [f"wörd{i}" for i in range(25)]
    text = " ".join(words)
    chunks = chunking.chunk_text(text, 10, 3)
    assert [c.tokens for c in chunks] == [10, 10, 10, 4]  # starts 0, 7, 14, 21; the last ends the text
    for a, b in zip(chunks, chunks[1:]):
        assert a.text.split()[-3:] == b.text.split()[:3]
    for c in chunks:
        assert text[c.start:].startswith(c.text)
        assert text.encode()[c.byte_start:].startswith(c.text.encode())
    assert chunks[-1].text.endswith("wörd24") and chunking.chunk_text("", 10, 3) == []
    assert len(chunking.chunk_text(text, 25, 0)) == 1
    with pytest.raises(ValueError):
        chunking.chunk_text(text, 4, 4)


def test_chunks_count_the_tokenizers_tokens(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["refunds are paid within five business days"] * 20,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok)
    text = "Refunds are paid within five business days, unless the card issuer delays them. " * 6
    chunks = chunking.chunk_text(text, 32, 8, hf)
    ids = hf(text, add_special_tokens=False)["input_ids"]
    assert len(chunks) == -(-(len(ids) - 8) // 24) and all(c.tokens <= 32 for c in chunks)
    assert all(abs(len(hf(c.text, add_special_tokens=False)["input_ids"]) - c.tokens) <= 1 for c in chunks)
    assert sum(c.tokens for c in chunks) - 8 * (len(chunks) - 1) == len(ids)


def test_documents_spec_is_strict():
    from llmft.config import CurationSpec, DocumentsSpec
    from llmft.errors import SpecError

    assert DocumentsSpec().output == "text"
    for bad in ({"chunk_tokens": 64, "overlap_tokens": 64}, {"output": "chat"}, {"chunk_size": 100},
                {"max_zip_ratio": 1}):
        with pytest.raises((ValueError, SpecError)):
            DocumentsSpec(**bad)
    with pytest.raises(ValueError, match="exceeds filters.max_tokens"):
        CurationSpec(tenant="a", source="d", output="o", documents={"chunk_tokens": 4096})


def test_register_copies_documents_but_never_a_symlink(docs, store, tmp_path):
    from pathlib import Path

    from llmft.config import DatasetSpec
    from llmft.data import snapshots

    truth = docs.write_corpus(tmp_path / "corpus", tmp_path / "elsewhere")
    store.create_tenant("acme", "admin")
    _rec, summary = snapshots.register(DatasetSpec(name="docs", tenant="acme", source=str(tmp_path / "corpus"),
                                                   format="documents"), store, "t")
    assert summary["bad_rows"] == {"refused_symlink": 2}
    assert summary["rows"] == len(truth["good"]) + 5  # files copied (parse errors are counted by curation)
    root = Path(summary["uri"])
    stored = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert "secrets.md" not in stored and not any(p.is_symlink() for p in root.rglob("*"))
    assert all(truth["secret"].encode() not in (root / s).read_bytes() for s in stored)
    assert "src/node_modules/left-pad/index.js" not in stored and "src/logo.png" not in stored
    meta = json.loads((root / "manifest.json").read_text())["meta"]
    assert {r["file"] for r in meta["refused"]} == {"secrets.md", "linked-dir"}


def test_chunks_become_text_rows_with_pii_redacted(docs):
    from llmft.config import CurationSpec
    from llmft.data import rows

    spec = CurationSpec(tenant="a", source="d", output="o", filters={"min_tokens": 2},
                        documents={"chunk_tokens": 16, "overlap_tokens": 4, "output": "passages"})
    plan = rows.RowPlan.from_spec(spec, "snap1", documents=True)
    page = "Write to travel.desk@example.com for refunds. " + docs.refund
    flat = [r.as_flat() for r in rows_of("m.pdf", docs.pdf([page]), chunk=16, overlap=4)]
    cleaned = rows.clean(flat, plan)
    assert [c["status"] for c in cleaned] == ["ok"] * len(flat) and len(flat) > 2
    out = rows.format_rows(cleaned, plan)
    assert all(r["prompt"] == "" and r["messages"] == "[]" for r in out)
    assert "travel.desk@example.com" not in json.dumps(out) and "EMAIL" in out[0]["completion"]
    assert {json.loads(r["extra"])["page"] for r in out} == {1} and out[0]["source_line"] == 1

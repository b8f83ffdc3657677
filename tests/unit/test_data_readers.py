"""Readers: provenance on every row; bad input counted with reason and location, never a crash."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from llmft.data.readers import Provenance, check_fields, read_file, read_source


def test_jsonl_bad_lines_are_counted_with_location(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"id": "1", "prompt": "p", "response": "r"}\n'
                  b'{"id": "2", "prompt": "p"\n'
                  b'[1, 2]\n'
                  b'\n'
                  b'{"id": "3", "prompt": "caf\xe9", "response": "r"}\n'
                  b'{"id": "4", "prompt": "' + b"x" * 5000 + b'", "response": "r"}\n'
                  b'{"id": "5", "prompt": 7, "response": "r"}\n')
    prov = Provenance("snapshot://t/d/x", "cc-by", "support")
    rows = list(read_file(f, "jsonl", prov=prov, max_row_bytes=1000))
    assert [(r.source_line, r.error) for r in rows] == [
        (1, None), (2, "malformed_json"), (3, "not_an_object"), (5, "invalid_utf8"), (6, "row_too_large"), (7, None)]
    flat = rows[0].as_flat()
    assert flat["source_uri"] == "snapshot://t/d/x" and flat["license_class"] == "cc-by" and flat["purpose"] == "support"
    assert flat["source_file"] == "a.jsonl" and json.loads(flat["record"])["id"] == "1"
    req = {"prompt": str, "response": str}
    assert check_fields(rows[-1].record, req) == "wrong_type:prompt"
    assert check_fields({"prompt": "p"}, req) == "missing_field:response"
    assert check_fields({"prompt": "p", "response": None}, req) == "wrong_type:response"


def test_empty_files_csv_parquet_and_text_dirs(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert [r.error for r in read_file(tmp_path / "empty.jsonl", "jsonl")] == ["empty_file"]
    (tmp_path / "c.csv").write_bytes("id,prompt,response\n1,hello,world\n2,a,b,extra\n3,café,ok\n".encode())
    rows = list(read_file(tmp_path / "c.csv", "csv"))
    assert [(r.source_line, r.error) for r in rows] == [(2, None), (3, "malformed_csv"), (4, None)]
    assert rows[2].record["prompt"] == "café"
    pq.write_table(pa.Table.from_pylist([{"id": "1", "text": "a"}, {"id": "2", "text": "b"}]), tmp_path / "p.parquet")
    assert [r.record["id"] for r in read_file(tmp_path / "p.parquet", "parquet")] == ["1", "2"]
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("first document")
    (docs / "sub" / "b.txt").write_bytes(b"bad \xff byte")
    (docs / "sub" / "c.txt").write_text("")
    rows = list(read_source(docs, "text"))
    assert [(r.source_file, r.error) for r in rows] == [("a.txt", None), ("sub/b.txt", "invalid_utf8"),
                                                        ("sub/c.txt", "empty_file")]
    assert rows[0].record["text"] == "first document"

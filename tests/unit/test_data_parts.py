"""Part files of a curated snapshot: the same rows give the same files and bytes, whatever their order."""

import random

import pyarrow as pa
import pyarrow.parquet as pq


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i:04d}", "split": ("train", "validation", "test")[i % 3], "prompt": f"p{i}",
             "completion": f"c{i}", "messages": "[]", "source_snapshot": "s", "source_uri": "u",
             "source_file": "f.jsonl", "source_line": i + 1, "license_class": "x", "purpose": "y",
             "replay": i % 7 == 0, "extra": "{}"} for i in range(n)]


def _write_all(rows: list[dict], directory, files: dict, chunk: int) -> dict:
    from llmft.data import parts

    schema = parts.output_schema()
    table = pa.concat_tables([pa.Table.from_pylist(rows[i:i + chunk], schema=schema)
                              for i in range(0, len(rows), chunk)])
    tagged = parts.assign(table, files)
    names = tagged.column(parts.PART_COLUMN).to_pylist()
    for name in sorted(set(names)):
        group = tagged.filter(pa.array([x == name for x in names]))
        parts.write_part(group, str(directory), schema)
    return {p.name: p.read_bytes() for p in parts.files(directory)}


def test_same_rows_same_bytes_whatever_order_and_chunking(tmp_path):
    from llmft.data import parts

    rows = _rows(300)
    files = parts.layout({"train": 100, "validation": 100, "test": 100}, rows_per_file=40)
    assert files == {"train": 3, "validation": 3, "test": 3}
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _write_all(rows, tmp_path / "a", files, chunk=300)
    second = _write_all(shuffled, tmp_path / "b", files, chunk=17)
    assert first == second and len(first) == 9
    assert sorted(first) == [parts.part_name(s, i, 3) for s in ("test", "train", "validation") for i in range(3)]
    back = parts.read_table(tmp_path / "a").to_pylist()
    assert sorted(r["id"] for r in back) == sorted(r["id"] for r in rows)
    for path in parts.files(tmp_path / "a"):  # each file: its split only, rows in the canonical order
        got = pq.read_table(path).to_pylist()
        assert {r["split"] for r in got} == {path.name.split("-")[0]}
        keys = [tuple(r[k] for k in parts.SORT_KEYS) for r in got]
        assert keys == sorted(keys)
    train = parts.read_table(tmp_path / "a", columns=["id", "split"], split="train")
    assert train.num_rows == 100 and set(train.column("split").to_pylist()) == {"train"}


def test_empty_split_has_no_file():
    from llmft.data import parts

    assert parts.layout({"train": 5, "validation": 0, "test": 1}) == {"train": 1, "test": 1}

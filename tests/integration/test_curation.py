"""Curation on Ray Data, end to end on the generated sample; dedupe CLI; distributed components."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def ray_local(ray_cluster):
    """The tier's session-wide Ray, with Ray Data's progress bars off (test logs stay readable)."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


@pytest.fixture
def registered(store, tmp_path):
    from llmft.config import DatasetSpec
    from llmft.data import snapshots
    from llmft.demo.samples import generate_sample_dataset

    paths = generate_sample_dataset(tmp_path / "sample", seed=0, n_tickets=300)
    store.create_tenant("acme", "admin")
    store.create_tenant("globex", "admin")
    snapshots.register(DatasetSpec(name="tickets", tenant="acme", source=str(paths["tickets"]),
                                   subject_field="customer_id", license_class="proprietary"), store, "t")
    snapshots.register(DatasetSpec(name="general", tenant="acme", source=str(paths["general"]),
                                   classification="public"), store, "t")
    return paths


def test_curation_end_to_end(ray_local, store, registered, tiny_base_dir):
    from llmft.config import CurationSpec
    from llmft.data import curation, erasure, formatting, minhash, parts, replay

    truth = json.loads(registered["truth"].read_text())
    spec = CurationSpec(tenant="acme", source="tickets", output="tickets-curated", tokenizer=str(tiny_base_dir),
                        dedupe={"threshold": 0.6}, replay={"source": "general", "fraction": 0.1},
                        format={"style": "chat", "system_prompt": "Be helpful."})
    from llmft.jobs import run_job

    job = run_job("curation", spec, store, "t", options={"num_blocks": 4})
    assert job["status"] == "succeeded" and job["result"]["rows"] > 0
    result = {**job["result"], "job_id": job["id"]}
    snap_dir = store.get_snapshot("acme", "tickets-curated").uri
    rows = parts.read_table(snap_dir).to_pylist()
    assert tuple(rows[0]) == formatting.COLUMNS
    # bad input counted with reasons, nothing silently lost
    report = json.loads(open(f"{snap_dir}/report.json").read())
    steps = {s["step"]: s for s in report["steps"]}
    assert sum(steps["read"]["dropped"].values()) == len(truth["malformed"])
    assert steps["read"]["in"] == truth["counts"]["lines"]
    assert steps["quality"]["dropped"].get("toxic", 0) >= 1 and steps["quality"]["dropped"].get("empty", 0) >= 1
    # PII: counted by type, values never in the output or the report
    assert set(report["pii_findings"]) >= {"email", "phone", "card", "ssn", "iban", "ip", "secret"}
    blob = json.dumps(rows) + json.dumps(report) + open(f"{snap_dir}/report.html").read()
    for items in truth["pii"].values():
        for it in items:
            assert it["value"] not in blob
    # exact duplicates gone; near duplicates mostly gone
    own = [r for r in rows if not r["replay"]]
    texts = [minhash.normalise(r["prompt"] + r["completion"]) for r in own]
    assert len(texts) == len(set(texts))
    kept = {r["id"] for r in own}
    for group in truth["exact_duplicates"]:
        assert len(kept & set(group)) <= 1
    near_groups = [{g["source"], *[c["id"] for c in g["copies"]]} for g in truth["near_duplicates"]]
    assert sum(len(kept & g) <= 1 for g in near_groups) >= 0.6 * len(near_groups)
    # contract: rendered prompts, eos completions, provenance, splits, replay share
    tok = formatting.cached_tokenizer(str(tiny_base_dir))
    assert all(r["completion"].endswith(tok.eos_token) for r in rows)
    assert all(r["prompt"].endswith("<|assistant|>\n") for r in rows)
    assert {r["source_file"] for r in own} == {"tickets.jsonl"} and all(r["source_line"] > 0 for r in own)
    n_train = sum(1 for r in own if r["split"] == "train")
    assert sum(r["replay"] for r in rows) == replay.count_for(n_train, 0.1) > 0
    assert all(r["split"] == "train" for r in rows if r["replay"])
    assert {r["split"] for r in own} == {"train", "validation", "test"}
    rec = store.get_snapshot("acme", "tickets-curated")
    source = store.get_snapshot("acme", "tickets")
    assert rec.kind == "curated" and source.id in rec.parents and rec.spec_digest
    assert store.get_job("acme", result["job_id"]).status == "succeeded"
    # same input, other partitioning -> same bytes, same snapshot
    again = curation.run(spec, store, "t", num_blocks=3)
    assert again["snapshot"]["id"] == rec.id and again["snapshot"]["created"] is False
    # erasure by subject on the curated snapshot (subject in the `extra` column)
    subject = truth["erasure_subject"]["customer_id"]
    out = erasure.erase(store, "acme", "tickets-curated", subject, actor="dpo", field="customer_id")
    assert out["removed"] > 0
    erased = parts.read_table(out["snapshot"]["uri"]).to_pylist()
    assert len(erased) == len(rows) - out["removed"] and subject not in json.dumps(erased)
    assert store.get_snapshot("acme", rec.id).superseded_by == out["snapshot"]["id"]


def test_refused_before_work_for_missing_or_foreign_snapshot(store, registered):
    from llmft.config import CurationSpec
    from llmft.data import curation
    from llmft.errors import NotFoundError, SpecError

    with pytest.raises(NotFoundError, match="nope"):
        curation.check(CurationSpec(tenant="acme", source="nope", output="x", format={"style": "alpaca"}), store)
    with pytest.raises(NotFoundError):
        curation.check(CurationSpec(tenant="globex", source="tickets", output="x", format={"style": "alpaca"}), store)
    with pytest.raises(SpecError, match="tokenizer"):
        curation.check(CurationSpec(tenant="acme", source="tickets", output="x"), store)


def test_dedupe_cli_ray_matches_local(ray_local, tmp_path):
    from typer.testing import CliRunner

    from llmft.cli.main import app
    from llmft.demo.samples import write_dedupe_corpus

    src = tmp_path / "corpus.jsonl"
    truth = write_dedupe_corpus(src, 2000, seed=2)
    with open(src, "ab") as fh:
        fh.write(b'{"id": "broken", "text": \n')
    runner = CliRunner()
    outs = {}
    for engine in ("ray", "local"):
        res = runner.invoke(app, ["data", "dedupe", str(src), "--text-field", "text", "--id-field", "id",
                                  "--threshold", "0.5", "--ngram", "5", "--out", str(tmp_path / engine),
                                  "--engine", engine, "--json"])
        assert res.exit_code == 0, res.output
        outs[engine] = json.loads(res.output)
        clusters = [json.loads(x) for x in (tmp_path / engine / "clusters.jsonl").read_text().splitlines()]
        assert len(clusters) == 2000
    assert (tmp_path / "ray" / "clusters.jsonl").read_text() == (tmp_path / "local" / "clusters.jsonl").read_text()
    assert (tmp_path / "ray" / "kept.jsonl").read_text() == (tmp_path / "local" / "kept.jsonl").read_text()
    assert outs["ray"]["bad_rows"] == 1 and outs["ray"]["removed"] >= 0.9 * truth["duplicates_to_remove"]


def test_distributed_components_match_in_memory(ray_local):
    import ray

    from llmft.data.dedupe import components
    from llmft.data.components_ray import components_distributed

    rng = np.random.default_rng(0)
    a = np.array([f"n{i:03d}" for i in rng.integers(0, 60, 50)])
    b = np.array([f"n{i:03d}" for i in rng.integers(0, 60, 50)])
    edges = ray.data.from_items([{"a": x, "b": y} for x, y in zip(a, b)])
    assert components_distributed(edges, num_blocks=3) == components(a, b)


@pytest.mark.parametrize("verify", ["exact", "estimate"])
def test_ray_shuffle_path_matches_in_process(ray_local, verify):
    """Above local_max_rows the bands shuffle and (exact) the candidate/shingle-set joins decide the same pairs."""
    from llmft.data.dedupe import DedupeParams, dedupe_columns
    from llmft.data.dedupe_ray import dedupe_dataset
    from llmft.demo.samples import generate_dedupe_corpus

    docs, _truth = generate_dedupe_corpus(3000, seed=5)
    params = DedupeParams(threshold=0.6, verify=verify, local_max_rows=0)
    local_labels, local_stats = dedupe_columns([d["id"] for d in docs], [d["text"] for d in docs], params)
    ds = ray_local.data.from_items(docs).repartition(4)
    kept, labels, stats = dedupe_dataset(ds, "text", "id", params, num_blocks=3)
    assert stats.engine == "ray" and local_stats.engine == "in-process"
    assert labels == local_labels and local_stats.near_removed > 0
    assert (stats.exact_removed, stats.near_removed) == (local_stats.exact_removed, local_stats.near_removed)
    assert stats.exact_pairs == local_stats.exact_pairs
    assert stats.verified_pairs >= local_stats.verified_pairs and stats.rejected_pairs >= local_stats.rejected_pairs
    if verify == "exact":  # verified once per pair after the joins; exact copies never count as near pairs
        assert stats.verified_pairs <= local_stats.verified_pairs + local_stats.rejected_pairs
    assert sorted(r["id"] for r in kept.take_all()) == sorted(k for k in (d["id"] for d in docs)
                                                             if local_labels.get(k, k) == k)
    small, small_labels, small_stats = dedupe_dataset(ds, "text", "id", DedupeParams(threshold=0.6, verify=verify),
                                                      num_blocks=3)
    assert small_stats.engine == "in-process" and "local_max_rows" in small_stats.engine_reason
    assert small_labels == local_labels and small.count() == kept.count()


@pytest.mark.parametrize("local_max_rows", [pytest.param(0, marks=pytest.mark.slow), 250_000])
def test_dedupe_without_labels_keeps_the_same_rows(ray_local, local_max_rows):
    """`want_labels=False` (curation's call): no labels come back, the same rows are kept, the same counts."""
    from llmft.data.dedupe import DedupeParams
    from llmft.data.dedupe_ray import dedupe_dataset
    from llmft.demo.samples import generate_dedupe_corpus

    docs, _truth = generate_dedupe_corpus(1000, seed=3)
    params = DedupeParams(threshold=0.6, local_max_rows=local_max_rows)
    ds = ray_local.data.from_items(docs).repartition(3)
    kept, labels, stats = dedupe_dataset(ds, "text", "id", params, num_blocks=3)
    bare, none, bare_stats = dedupe_dataset(ds, "text", "id", params, num_blocks=3, want_labels=False)
    assert none is None and labels and bare_stats == stats and stats.near_removed > 0
    assert sorted(r["id"] for r in bare.take_all()) == sorted(r["id"] for r in kept.take_all()) == sorted(
        d["id"] for d in docs if labels.get(d["id"], d["id"]) == d["id"])


def test_curated_snapshot_independent_of_partitioning(ray_local, store, registered):
    """Other block counts, same rows: the same part files, bytes and snapshot id; erasure keeps the layout."""
    from llmft.config import CurationSpec
    from llmft.data import curation, erasure, parts
    from llmft.manifest import MANIFEST_NAME, read_manifest

    spec = CurationSpec(tenant="acme", source="tickets", output="tickets-parts", format={"style": "alpaca"},
                        dedupe={"threshold": 0.6}, replay={"source": "general", "fraction": 0.2})
    one = curation.run(spec, store, "t", num_blocks=1, rows_per_file=40)
    five = curation.run(spec, store, "t", num_blocks=5, rows_per_file=40)
    assert five["snapshot"]["id"] == one["snapshot"]["id"] and five["snapshot"]["created"] is False
    assert five["splits"] == one["splits"] and five["rows"] == one["rows"]
    path = Path(one["snapshot"]["uri"])
    manifest = read_manifest(path)
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(manifest.files) == on_disk - {MANIFEST_NAME}  # the manifest lists every file
    files = parts.files(path)
    assert len([f for f in files if f.name.startswith("train-")]) > 1
    assert manifest.meta["files"] == {f.name: pq.read_metadata(f).num_rows for f in files}
    rows = parts.read_table(path).to_pylist()
    assert len(rows) == one["rows"] == sum(manifest.meta["files"].values())
    assert sum(r["replay"] for r in rows) == one["splits"]["train"] - sum(
        1 for r in rows if r["split"] == "train" and not r["replay"]) > 0
    subject = json.loads(registered["truth"].read_text())["erasure_subject"]["customer_id"]
    out = erasure.erase(store, "acme", "tickets-parts", subject, actor="dpo", field="customer_id")
    erased = parts.read_table(out["snapshot"]["uri"]).to_pylist()
    assert out["removed"] > 0 and len(erased) == len(rows) - out["removed"] and subject not in json.dumps(erased)
    assert [f.name for f in parts.files(out["snapshot"]["uri"])] == [f.name for f in files]
    assert store.get_snapshot("acme", out["snapshot"]["id"]).row_count == len(erased)


class _RssPeak:
    """The driver's peak RSS above its level at entry, sampled every 20 ms in a thread."""

    def __enter__(self):
        import threading

        import psutil

        self._proc, self._stop = psutil.Process(), threading.Event()
        self.start = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        import time

        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def rise(self) -> int:
        return self.peak - self.start


@pytest.mark.slow
def test_curated_rows_never_gather_on_the_driver(ray_local, store, tmp_path):
    """~80 MB of curated rows: the driver's RSS rises by well under their size (a gather would hold them all)."""
    import random

    from llmft.config import CurationSpec, DatasetSpec
    from llmft.data import curation, parts, snapshots

    rng = random.Random(0)
    src = tmp_path / "big.jsonl"
    n, words = 1200, 7000  # ~64 KB of response per row
    with open(src, "w") as fh:
        for i in range(n):
            text = " ".join(f"{rng.getrandbits(32):08x}" for _ in range(words))
            fh.write(json.dumps({"id": f"b{i:05d}", "prompt": f"Summarise document {i}.", "response": text}) + "\n")
    small = tmp_path / "small.jsonl"
    small.write_text("".join(src.open().readline() for _ in range(1)))
    store.create_tenant("acme", "admin")
    spec = {"tenant": "acme", "format": {"style": "alpaca"}, "pii": {"exclude": ["prompt", "response"]},
            "filters": {"max_tokens": 100_000}, "dedupe": {"near": False}}
    for name, path in (("small", small), ("big", src)):
        snapshots.register(DatasetSpec(name=name, tenant="acme", source=str(path)), store, "t")
    # warm-up on one row: first-use imports and caches of this process are not the rows' memory
    curation.run(CurationSpec(source="small", output="small-curated", **spec), store, "t", num_blocks=2)
    with _RssPeak() as rss:
        out = curation.run(CurationSpec(source="big", output="big-curated", **spec), store, "t", num_blocks=4)
    assert out["rows"] == n
    size = parts.read_table(out["snapshot"]["uri"], columns=["completion"]).nbytes
    assert size > 70 * 2**20
    assert rss.rise < size / 2, f"driver RSS rose {rss.rise / 2**20:.0f} MiB for {size / 2**20:.0f} MiB of rows"

"""`llmft data`: register, list, show, verify, curate, dedupe and erase datasets; generate the sample."""

from __future__ import annotations

from pathlib import Path

import typer

from llmft.cli.output import (ActorOpt, DryRunOpt, JsonOpt, OverridesArg, SpecOpt, actor_name, emit,
                              handles_errors, load_cli_spec)

app = typer.Typer(no_args_is_help=True)
TenantOpt = typer.Option(..., "--tenant", "-t", help="Owning tenant.")


@app.command("register")
@handles_errors
def register(spec: Path = SpecOpt, overrides: list[str] = OverridesArg, dry_run: bool = DryRunOpt,
             actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Record a raw dataset as an immutable, hashed snapshot (same bytes -> same id)."""
    from llmft.config import DatasetSpec

    s = load_cli_spec(spec, overrides, DatasetSpec)
    if dry_run:
        from llmft.data.snapshots import source_files

        files = source_files(Path(s.source), s.format.value)
        emit({"plan": "register", "spec": s.model_dump(mode="json"), "files": [str(f) for f in files]}, as_json)
        return
    from llmft.data.snapshots import register as do_register
    from llmft.store import Store

    _rec, summary = do_register(s, Store(), actor_name(actor))
    verb = "registered" if summary["created"] else "already registered"
    emit(summary, as_json, f"{verb} {s.tenant}/{s.name} v{summary['version']} id={summary['id'][:12]} "
                           f"rows={summary['rows']} bad={sum(summary['bad_rows'].values())}")


@app.command("list")
@handles_errors
def list_(tenant: str = TenantOpt, dataset: str = typer.Option(None, "--dataset", help="Only this dataset."),
          as_json: bool = JsonOpt) -> None:
    """List a tenant's snapshots (through the API when LLMFT_API_URL is set)."""
    from llmft.cli import backend

    rows = backend.data_list(tenant, dataset)
    lines = [f"{r['dataset']}:{r['version']}\t{r['kind']}\t{r['id'][:12]}\trows={r['row_count']}\t"
             f"{r['classification']}" + (f"\tsuperseded_by={r['superseded_by'][:12]}" if r['superseded_by'] else "")
             for r in rows]
    emit(rows, as_json, "\n".join(lines) or "(none)")


@app.command("show")
@handles_errors
def show(ref: str = typer.Argument(..., help="name, name:version or snapshot id."), tenant: str = TenantOpt,
         as_json: bool = JsonOpt) -> None:
    """Show one snapshot's record and manifest metadata (the record alone through the API)."""
    from llmft.cli import backend
    from llmft.data.snapshots import open_snapshot
    from llmft.store import Store

    if backend.remote() is not None:
        emit(backend.data_show(tenant, ref), as_json)
        return
    snap = open_snapshot(Store(), tenant, ref, verify=False)
    emit({**snap.record.as_dict(), "manifest": {"files": len(snap.manifest.files), "meta": snap.meta}}, as_json)


@app.command("verify")
@handles_errors
def verify(ref: str = typer.Argument(..., help="name, name:version or snapshot id."), tenant: str = TenantOpt,
           as_json: bool = JsonOpt) -> None:
    """Re-hash every file of a snapshot against its manifest; fails naming a modified file."""
    from llmft.data.snapshots import open_snapshot
    from llmft.store import Store

    snap = open_snapshot(Store(), tenant, ref, verify=True)
    emit({"ok": True, "id": snap.record.id, "files": len(snap.manifest.files)}, as_json,
         f"ok: {snap.record.dataset}:{snap.record.version} ({len(snap.manifest.files)} files match)")


@app.command("curate")
@handles_errors
def curate(spec: Path = SpecOpt, overrides: list[str] = OverridesArg, dry_run: bool = DryRunOpt,
           actor: str = ActorOpt, as_json: bool = JsonOpt,
           num_blocks: int = typer.Option(None, "--num-blocks", help="Ray Data shuffle partitions.")) -> None:
    """Curate a snapshot on Ray Data: PII, filters, dedupe, format, split, replay -> curated snapshot."""
    from llmft.config import CurationSpec
    from llmft.jobs import KINDS, run_job
    from llmft.jobs.cluster import ray_session
    from llmft.store import Store

    s = load_cli_spec(spec, overrides, CurationSpec)
    store = Store()
    plan = KINDS["curation"].preflight(s, store)
    if dry_run:
        emit({"plan": "curate", **plan, "spec": s.model_dump(mode="json")}, as_json)
        return
    with ray_session():
        job = run_job("curation", s, store, actor_name(actor), options={"num_blocks": num_blocks},
                      preflight=False)  # ran above
    result = {**job["result"], "job_id": job["id"]}
    snap_out = result["snapshot"]
    emit(result, as_json, f"curated {s.tenant}/{snap_out['dataset']} v{snap_out['version']} "
                          f"id={snap_out['id'][:12]} rows={result['rows']} splits={result['splits']}\n"
                          f"report: {result['report_html']}")


@app.command("dedupe")
@handles_errors
def dedupe(in_path: Path = typer.Argument(..., help="JSONL or Parquet file."),
           out: Path = typer.Option(..., "--out", help="Directory for kept.jsonl, clusters.jsonl, summary.json."),
           text_field: str = typer.Option("text", "--text-field"), id_field: str = typer.Option("id", "--id-field"),
           threshold: float = typer.Option(0.8, "--threshold"), ngram: int = typer.Option(5, "--ngram"),
           num_perm: int = typer.Option(128, "--num-perm"), bands: int = typer.Option(None, "--bands"),
           rows: int = typer.Option(None, "--rows"), no_verify: bool = typer.Option(False, "--no-verify"),
           engine: str = typer.Option("ray", "--engine", help="ray (Ray Data) or local (in-process)."),
           as_json: bool = JsonOpt) -> None:
    """Exact + MinHash-LSH near-duplicate removal of one file."""
    from llmft.config import DedupeSpec
    from llmft.config.base import validate
    from llmft.data import dedupe_file
    from llmft.data.dedupe import DedupeParams

    if not in_path.is_file():
        raise FileNotFoundError(2, "no such file", str(in_path))
    ds = validate(DedupeSpec, {"threshold": threshold, "ngram": ngram, "num_perm": num_perm, "bands": bands,
                               "rows": rows, "verify": not no_verify}, "dedupe options")
    if engine == "ray":
        from llmft.jobs.cluster import ray_session

        with ray_session():
            summary = dedupe_file.run(in_path, out, text_field=text_field, id_field=id_field,
                                      params=DedupeParams.from_spec(ds), engine=engine)
    else:
        summary = dedupe_file.run(in_path, out, text_field=text_field, id_field=id_field,
                                  params=DedupeParams.from_spec(ds), engine=engine)
    emit(summary, as_json, f"kept {summary['kept']} of {summary['rows']} rows ({summary['removed']} duplicates, "
                           f"{summary['bad_rows']} unreadable) -> {out}")


@app.command("erase")
@handles_errors
def erase(ref: str = typer.Argument(..., help="Snapshot ref to erase from."),
          subject: str = typer.Option(..., "--subject", help="Data subject id."), tenant: str = TenantOpt,
          field: str = typer.Option(None, "--field", help="Field naming the subject (default: the dataset's "
                                                          "subject_field, else match anywhere)."),
          actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """New snapshot version without the subject's rows; supersedes the old one (and its descendants)."""
    from llmft.data.erasure import erase as do_erase
    from llmft.store import Store

    result = do_erase(Store(), tenant, ref, subject, actor=actor_name(actor), field=field)
    if result["snapshot"] is None:
        emit(result, as_json, "no rows reference that subject; nothing changed")
        return
    snap = result["snapshot"]
    emit(result, as_json, f"removed {result['removed']} rows -> {snap['dataset']}:{snap['version']} "
                          f"id={snap['id'][:12]}; superseded {len(result['superseded'])} snapshot(s)")


@app.command("generate-sample")
@handles_errors
def generate_sample(out: Path = typer.Argument(..., help="Output directory."),
                    seed: int = typer.Option(0, "--seed"), n_tickets: int = typer.Option(600, "--n-tickets"),
                    as_json: bool = JsonOpt) -> None:
    """Write the generated sample data set (tickets with planted problems, truth, general, eval sets)."""
    from llmft.demo.samples import generate_sample_dataset

    paths = generate_sample_dataset(out, seed=seed, n_tickets=n_tickets)
    emit({k: str(v) for k, v in paths.items()}, as_json, "\n".join(f"{k}: {v}" for k, v in paths.items()))

"""Demo stages of curation: register the raw snapshots, read one back verified, curate on Ray Data."""

from __future__ import annotations

from llmft.demo.pipeline.conductor import ACTOR, DemoContext, say, spec, stage


@stage("register data")
def register_raw(ctx: DemoContext) -> dict:
    """Record the tickets and the general set as immutable snapshots, then read the tickets back verified."""
    from llmft.config import DatasetSpec
    from llmft.data import snapshots

    sample = ctx.results["sample data"]
    out = {}
    for name, source in (("dataset-tickets.yaml", sample["tickets"]), ("dataset-general.yaml", sample["general"]),
                         ("dataset-triage.yaml", sample["triage"])):
        record, summary = snapshots.register(spec(name, DatasetSpec, [f"source={source}"]), ctx.store, ACTOR)
        out[record.dataset] = {"id": record.id, "version": record.version, "rows": summary["rows"],
                               "bad_rows": summary["bad_rows"]}
        say(f"snapshot {record.dataset}:{record.version} id {record.id[:12]}  rows {summary['rows']}"
            f"  malformed {sum(summary['bad_rows'].values())} (counted, kept out)")
    opened = snapshots.open_snapshot(ctx.store, "acme", "tickets")  # re-hashes every file
    out["read_back"] = {"files_verified": len(opened.manifest.files), "id": opened.record.id}
    return out


@stage("curate")
def curate(ctx: DemoContext) -> dict:
    """Two curation jobs on Ray Data. The raw support tickets show the full pipeline (PII redaction,
    quality filters, exact + MinHash-LSH dedupe, chat formatting, split, replay of a general set);
    the triage tickets become the chat pairs the demo's model trains on."""
    from llmft.config import CurationSpec
    from llmft.jobs import run_job

    out = {}
    for key, name in (("tickets", "curate-tickets.yaml"), ("triage", "curate-triage.yaml")):
        result = run_job("curation", spec(name, CurationSpec, []), ctx.store, ACTOR)["result"]
        snap = result["snapshot"]
        say(f"curated {snap['dataset']}:{snap['version']}  rows {result['rows']}  splits {result['splits']}")
        say(f"curation report: {result['report_html']}")
        out[key] = {"snapshot": snap, "rows": result["rows"], "splits": result["splits"], "report": result["report"],
                    "report_html": result["report_html"]}
    return out

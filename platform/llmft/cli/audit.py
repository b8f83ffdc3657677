"""`llmft audit`: verify the hash chain, show the head anchor, export JSONL for a SIEM."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from llmft.cli.output import JsonOpt, emit, fail, handles_errors

app = typer.Typer(no_args_is_help=True)


def _load_anchor(path: Path | None) -> dict | None:
    if path is None:
        return None
    data = json.loads(path.read_text())
    if not {"seq", "digest"} <= set(data):
        fail(f"{path}: an anchor needs 'seq' and 'digest' (as `llmft audit head --json` prints)")
    return data


@app.command("verify")
@handles_errors
def verify(anchor: Path = typer.Option(None, "--anchor", help="Anchor JSON from `llmft audit head --json`."),
           from_file: Path = typer.Option(None, "--file", help="Verify an exported JSONL instead of the DB."),
           as_json: bool = JsonOpt) -> None:
    """Re-walk the chain; exit 1 naming the first bad record."""
    from llmft.store.audit_chain import verify_records
    from llmft.store import Store

    if from_file is not None:
        with open(from_file, encoding="utf-8") as fh:
            verdict = verify_records((json.loads(line) for line in fh if line.strip()), _load_anchor(anchor))
    else:
        verdict = Store().audit.verify(_load_anchor(anchor))
    if verdict.ok:
        emit(verdict.as_dict(), as_json, f"audit log OK: {verdict.records} records, head {verdict.head_digest[:16]}")
        return
    if as_json:
        emit(verdict.as_dict(), True)
        raise typer.Exit(1)
    fail(f"audit log TAMPERED at record {verdict.first_bad_seq}: {verdict.reason}")


@app.command("head")
@handles_errors
def head(as_json: bool = JsonOpt) -> None:
    """Print the newest record's seq and digest (an anchor to keep outside the cluster)."""
    from llmft.store import Store

    data = Store().audit.head()
    emit(data, as_json, f"{data['seq']} {data['digest']}")


@app.command("export")
@handles_errors
def export(out: Path = typer.Option(..., "--out", help="JSONL file to write."),
           tenant: str = typer.Option(None, "--tenant", help="Only this tenant's records."),
           since: int = typer.Option(0, "--since", help="Only records after this seq."),
           as_json: bool = JsonOpt) -> None:
    """Write audit records as JSON lines for a SIEM."""
    from llmft.store import Store

    count = Store().audit.export_jsonl(out, tenant, since)
    emit({"path": str(out), "records": count}, as_json, f"wrote {count} records to {out}")


@app.command("log")
@handles_errors
def log(tenant: str = typer.Option(None, "--tenant"), last: int = typer.Option(20, "--last"),
        as_json: bool = JsonOpt) -> None:
    """Show the newest records."""
    from llmft.store import Store

    rows = list(Store().audit.records(tenant))[-last:]
    emit(rows, as_json, "\n".join(
        f"{r['seq']:>6} {r['ts'][:19]} {r['actor']:<20} {r['tenant'] or '-':<12} {r['action']:<24} {r['object']}"
        for r in rows) or "(empty)")

"""`llmft keys`: API keys; the plaintext is printed once and only its hash is stored."""

from __future__ import annotations

import typer

from llmft.cli.output import ActorOpt, JsonOpt, actor_name, emit, handles_errors

app = typer.Typer(no_args_is_help=True)


@app.command("create")
@handles_errors
def create(tenant: str = typer.Option(..., "--tenant", help="Tenant the key acts for."),
           role: str = typer.Option(..., "--role", help="viewer | developer | approver | admin"),
           actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Create an API key (shown once)."""
    from llmft.cli import backend

    rec = backend.keys_create(tenant, role, actor_name(actor))
    emit(rec, as_json, f"{rec['key']}\n(key id {rec['id']}, role {rec['role']}, tenant {rec['tenant']}; "
                       "store it now: it is not shown again)")


@app.command("list")
@handles_errors
def list_(tenant: str = typer.Option(..., "--tenant"), as_json: bool = JsonOpt) -> None:
    """List a tenant's keys (ids and roles; never the keys)."""
    from llmft.cli import backend

    rows = backend.keys_list(tenant)
    emit(rows, as_json, "\n".join(
        f"{k['id']}\t{k['role']}\t{'revoked' if k['revoked_at'] else 'active'}" for k in rows) or "(none)")


@app.command("revoke")
@handles_errors
def revoke(key_id: str, actor: str = ActorOpt, as_json: bool = JsonOpt,
           tenant: str = typer.Option(None, "--tenant", envvar="LLMFT_TENANT", help="Key's tenant (API mode).")) -> None:
    """Revoke a key by id."""
    from llmft.cli import backend

    rec = backend.keys_revoke(key_id, actor_name(actor), tenant)
    emit(rec, as_json, f"revoked key {rec['id']}")

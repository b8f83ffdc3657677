"""`llmft tenants`: create and inspect tenants and their privacy budgets."""

from __future__ import annotations

import typer

from llmft.cli.output import ActorOpt, JsonOpt, actor_name, emit, handles_errors

app = typer.Typer(no_args_is_help=True)


@app.command("create")
@handles_errors
def create(name: str = typer.Argument(..., help="Tenant name."),
           epsilon_budget: float = typer.Option(None, "--epsilon-budget", help="DP budget (default 10)."),
           actor: str = ActorOpt, as_json: bool = JsonOpt) -> None:
    """Create a tenant (through the API with LLMFT_API_URL: a platform admin key; prints the first admin key)."""
    from llmft.cli import backend

    out = backend.tenants_create(name, epsilon_budget, actor_name(actor))
    rec = out["tenant"]
    key = f"\nfirst admin key (shown once): {out['admin_key']['key']}" if "admin_key" in out else ""
    emit(out if "admin_key" in out else rec, as_json,
         f"created tenant {rec['name']} (epsilon budget {rec['epsilon_budget']:g}){key}")


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOpt) -> None:
    """List tenants."""
    from llmft.cli import backend

    rows = backend.tenants_list()
    emit(rows, as_json, "\n".join(f"{t['name']}\tepsilon_budget={t['epsilon_budget']:g}" for t in rows) or "(none)")


@app.command("show")
@handles_errors
def show(name: str, as_json: bool = JsonOpt) -> None:
    """Show a tenant with its privacy ledger summary."""
    from llmft.cli import backend

    emit(backend.tenants_show(name), as_json)

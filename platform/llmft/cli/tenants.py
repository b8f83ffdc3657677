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
    """Create a tenant."""
    from llmft.store import Store

    rec = Store().create_tenant(name, actor_name(actor), epsilon_budget)
    emit(rec.as_dict(), as_json, f"created tenant {rec.name} (epsilon budget {rec.epsilon_budget:g})")


@app.command("list")
@handles_errors
def list_(as_json: bool = JsonOpt) -> None:
    """List tenants."""
    from llmft.store import Store

    rows = [t.as_dict() for t in Store().list_tenants()]
    emit(rows, as_json, "\n".join(f"{t['name']}\tepsilon_budget={t['epsilon_budget']:g}" for t in rows) or "(none)")


@app.command("show")
@handles_errors
def show(name: str, as_json: bool = JsonOpt) -> None:
    """Show a tenant with its privacy ledger summary."""
    from llmft.store import Store

    store = Store()
    data = {**store.get_tenant(name).as_dict(), "privacy": store.privacy_summary(name).as_dict()}
    emit(data, as_json)

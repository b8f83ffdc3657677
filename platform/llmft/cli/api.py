"""`llmft api`: run the REST control plane, and call any of its routes."""

from __future__ import annotations

import json

import typer

from llmft.cli.output import JsonOpt, emit, handles_errors

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
@handles_errors
def serve(host: str = typer.Option("127.0.0.1", "--host", help="Bind address."),
          port: int = typer.Option(8080, "--port", help="Port."),
          log_level: str = typer.Option("info", "--log-level", help="uvicorn log level.")) -> None:
    """Serve the API with uvicorn (docs at /docs); jobs go to Ray when LLMFT_RAY_ADDRESS is set."""
    from llmft.control.server import serve as run

    run(host, port, log_level=log_level)


@app.command("request")
@handles_errors
def request(method: str = typer.Argument(..., help="GET or POST."),
            path: str = typer.Argument(..., help="Route under /v1, e.g. /tenants/acme/training-jobs."),
            body: str = typer.Option(None, "--body", help="JSON body for POST."),
            as_json: bool = JsonOpt) -> None:
    """Call any route at LLMFT_API_URL with LLMFT_API_KEY (the raw API, for scripts)."""
    from llmft.control.client import ApiClient
    from llmft.errors import SpecError

    try:
        payload = json.loads(body) if body else None
    except ValueError as exc:
        raise SpecError(f"--body: not valid JSON ({exc})") from None
    emit(ApiClient.from_env().request(method.upper(), path, json=payload), True if as_json else False)

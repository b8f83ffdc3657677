"""Run the control plane: uvicorn on its own (`llmft api serve`), or as a Ray Serve ingress."""

from __future__ import annotations

from typing import Any


def serve(host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "info") -> None:
    """Serve the API with uvicorn (blocking); jobs go to Ray when `LLMFT_RAY_ADDRESS` is set."""
    import uvicorn

    from llmft.control.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level=log_level)


def serve_deployment(args: dict | None = None) -> Any:
    """A Serve application whose ingress is the FastAPI app, built in each replica (never pickled)."""
    from ray import serve

    from llmft.control.app import create_app

    deployment = serve.deployment(serve.ingress(create_app)(), name="llmft-control",
                                  num_replicas=int((args or {}).get("replicas", 1)))
    return deployment.bind()

"""REST control plane: FastAPI app, API-key auth with roles and tenant scoping, Ray Job API submission.

`create_app(store=None, runner=None)` builds the app; `llmft api serve` runs it with uvicorn and
`llmft.control.serve_app:build_app` runs it as a Ray Serve ingress.
"""

from llmft.control.app import create_app

__all__ = ["create_app"]

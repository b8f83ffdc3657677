"""Serve application builder for the REST control plane: `import_path: llmft.control.serve_app:build_app`.

    serve run llmft.control.serve_app:build_app        # or list it in a Serve config file

The replicas need llmft installed and the same LLMFT_DB_URL / LLMFT_STORAGE / LLMFT_RAY_ADDRESS
environment as the cluster (set them via runtime_env env_vars).
"""

from __future__ import annotations


def build_app(args: dict | None = None):  # noqa: ANN201
    from llmft.control.server import serve_deployment

    return serve_deployment(args)

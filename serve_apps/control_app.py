"""Serve application builder for the REST control plane: `import_path: serve_apps.control_app:build`.

    serve run serve_apps.control_app:build        # or list it in a Serve config file

The replicas need llmft installed and the same LLMFT_DB_URL / LLMFT_STORAGE / LLMFT_RAY_ADDRESS
environment as the cluster (set them via runtime_env env_vars).
"""

from __future__ import annotations


def build(args: dict | None = None):  # noqa: ANN201
    from llmft.control.server import serve_deployment

    return serve_deployment(args)

"""The serving gateway over an in-process engine, on loopback: evaluation's local endpoint.

The same OpenAI surface as a Serve deployment (`gateway.http.create_app` over a `GatewayCore`),
with one `PeftEngine` holding the base (model name `base`) and every named adapter behind a
`LocalColour`, whose micro-batcher gathers concurrent requests into mixed-adapter batches.
Bound to 127.0.0.1 on a free port, in a thread; no API key (the caller is this process).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from llmft.errors import LlmftError
from llmft.manifest import MANIFEST_NAME, read_manifest, write_manifest

BASE_NAME = "base"
TENANT = "local"


def adapter_for(name: str, path: str | Path, *, digest: str | None = None, scratch: Path | None = None) -> Any:
    """A ResolvedAdapter for a directory; one without a manifest is copied to `scratch` and hashed there."""
    from llmft.serving.engine.adapters import ResolvedAdapter

    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise LlmftError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    if not (path / MANIFEST_NAME).is_file():
        if scratch is None:
            raise LlmftError(f"{path}: no {MANIFEST_NAME}; pass a scratch directory to hash a copy")
        target = scratch / name
        shutil.copytree(path, target, ignore=shutil.ignore_patterns("optimizer*", "*.pt", "trainer_state*"))
        digest = write_manifest(target, {"name": name, "source": str(path)}).digest
        path = target
    digest = digest or read_manifest(path).digest
    return ResolvedAdapter(TENANT, name, "1", str(path), digest)


def local_gateway(engine: Any, adapters: dict[str, Any], *, max_batch: int = 16, wait_s: float = 0.01) -> Any:
    """A `GatewayCore` serving `base` and `adapters` (name -> ResolvedAdapter) from one in-process engine."""
    from llmft.serving.engine.adapters import NamedAdapterSource
    from llmft.serving.engine.replica import LocalColour, ReplicaCore
    from llmft.serving.gateway.access import OpenAccess
    from llmft.serving.gateway.core import GatewayCore

    colour = LocalColour(ReplicaCore(engine, "blue"), max_batch=max_batch, wait_s=wait_s)
    return GatewayCore(store=None, tenancy=OpenAccess(TENANT), source=NamedAdapterSource(TENANT, adapters),
                       backends={"blue": colour}, bases=[BASE_NAME])


class LocalEndpoint:
    """Serve a base (model name `base`) and named adapters over HTTP until `stop()`; a context manager."""

    def __init__(self, base_ref: str | Path, adapters: dict[str, str | Path | Any] | None = None, *,
                 engine: Any = None, max_batch: int = 16, wait_s: float = 0.01, host: str = "127.0.0.1"):
        self.base_ref, self.host = str(base_ref), host
        self._scratch = Path(tempfile.mkdtemp(prefix="llmft-eval-adapters-"))
        self.adapters = {}
        for name, value in (adapters or {}).items():
            self.adapters[name] = value if hasattr(value, "adapter_id") else adapter_for(name, value,
                                                                                        scratch=self._scratch)
        self.max_batch, self.wait_s = max_batch, wait_s
        self._engine = engine
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.gateway: Any = None
        self.url = ""

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from llmft.serving.engine.peft_engine import PeftEngine

            self._engine = PeftEngine(self.base_ref, max_adapters=max(1, len(self.adapters)))
        return self._engine

    def start(self, timeout_s: float = 60.0) -> str:
        """Start serving; returns the base URL (`http://127.0.0.1:PORT/v1`)."""
        import uvicorn

        from llmft.serving.gateway.http import create_app

        self.gateway = local_gateway(self.engine, self.adapters, max_batch=self.max_batch, wait_s=self.wait_s)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.gateway), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"llmft-eval-endpoint-{port}")
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise LlmftError(f"local eval endpoint on {self.host}:{port} did not start")
            time.sleep(0.02)
        self.url = f"http://{self.host}:{port}/v1"
        return self.url

    def batch_sizes(self) -> list[int]:
        """Sizes of the engine batches run so far (concurrent requests share one)."""
        return list(self.gateway.backends["blue"].batches) if self.gateway is not None else []

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "LocalEndpoint":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

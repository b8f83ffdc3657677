"""A minimal local OpenAI-compatible server over the serving engine, for evaluations without a Serve app.

Same wire format as `llmft.serving` (its protocol module builds the bodies), one `PeftEngine`
holding the base and every adapter, and a micro-batcher that gathers concurrent requests
into one mixed-adapter `generate` call. Bound to 127.0.0.1 on a free port, in a thread.
"""


import asyncio
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


def adapter_for(name: str, path: str | Path, *, digest: str | None = None, scratch: Path | None = None) -> Any:
    """A ResolvedAdapter for a directory; one without a manifest is copied to `scratch` and hashed there."""
    from llmft.serving.adapters import ResolvedAdapter

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
    return ResolvedAdapter("local", name, "1", str(path), digest)


class _Batcher:
    """Collects payloads for up to `wait_s` (or `max_batch`) and runs them as one engine batch."""

    def __init__(self, core: Any, max_batch: int, wait_s: float):
        self.core, self.max_batch, self.wait_s = core, max_batch, wait_s
        self.queue: asyncio.Queue | None = None
        self.batches: list[int] = []

    async def submit(self, payload: dict) -> dict:
        if self.queue is None:
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._loop())
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((payload, fut))
        return await fut

    async def _loop(self) -> None:
        assert self.queue is not None
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                timeout = deadline - time.monotonic()
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(timeout, 0)) if timeout > 0
                                 else self.queue.get_nowait())
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
            self.batches.append(len(batch))
            try:
                results = await asyncio.to_thread(self.core.generate_batch, [p for p, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter gets the failure, the loop lives on
                results = [{"error": {"message": f"engine failed: {exc}", "code": "engine_error", "status": 503}}
                           for _ in batch]
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)


def create_app(engine: Any, adapters: dict[str, Any], *, max_batch: int = 16, wait_s: float = 0.01) -> Any:
    """FastAPI app: `/v1/completions`, `/v1/chat/completions`, `/v1/models`, `/healthz`."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from llmft.serving.protocol import (ApiError, ChatRequest, CompletionRequest, chat_body, completion_body,
                                        models_body, parse, served_headers)
    from llmft.serving.replica import ReplicaCore, make_payload

    batcher = _Batcher(ReplicaCore(engine, "local"), max_batch, wait_s)
    app = FastAPI(title="llmft local eval endpoint", docs_url=None, redoc_url=None)
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def _complete(kind: str, request: Request) -> JSONResponse:
        try:
            data = await request.json()
        except ValueError:
            raise ApiError(400, "request body is not valid JSON", code="invalid_json") from None
        body = parse(ChatRequest if kind == "chat" else CompletionRequest, data)
        if body.stream:
            raise ApiError(400, "stream: not supported by the local eval endpoint", param="stream")
        if body.model != BASE_NAME and body.model not in adapters:
            raise ApiError(404, f"model {body.model!r} does not exist here (serving: "
                                f"{', '.join([BASE_NAME, *adapters])})", param="model", code="model_not_found")
        adapter = adapters.get(body.model)
        params = body.sampling()
        if kind == "chat":
            payload = make_payload(messages=[m.model_dump() for m in body.messages], adapter=adapter, params=params)
        else:
            payload = make_payload(prompt=body.text(), adapter=adapter, params=params)
        result = await batcher.submit(payload)
        if "error" in result:
            err = result["error"]
            raise ApiError(err.get("status", 503), err["message"], param=err.get("param"), code=err.get("code"))
        served = {"adapter": result.get("adapter_id"), "adapter_version": result.get("adapter_version"),
                  "base_revision": result.get("base_revision"), "base_model": result.get("base_name")}
        build = chat_body if kind == "chat" else completion_body
        out = build(body.model, result["text"], result["finish_reason"], result["prompt_tokens"],
                    result["completion_tokens"], served)
        return JSONResponse(out, headers=served_headers(served))

    @app.post("/v1/completions")
    async def completions(request: Request) -> JSONResponse:
        return await _complete("completion", request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await _complete("chat", request)

    @app.get("/v1/models")
    async def models() -> Any:
        names = [BASE_NAME, *adapters]
        return models_body(names, {n: "llmft-local" for n in names})

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True, "base_revision": engine.base_revision, "adapters": list(adapters)}

    return app


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
        self.url = ""

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from llmft.serving.engine import PeftEngine

            self._engine = PeftEngine(self.base_ref, max_adapters=max(1, len(self.adapters)))
        return self._engine

    def start(self, timeout_s: float = 60.0) -> str:
        """Start serving; returns the base URL (`http://127.0.0.1:PORT/v1`)."""
        import uvicorn

        app = create_app(self.engine, self.adapters, max_batch=self.max_batch, wait_s=self.wait_s)
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
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
        return list(self.app.state.batcher.batches) if self._server else []

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

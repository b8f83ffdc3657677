"""The OpenAI-compatible HTTP surface (FastAPI) over a `GatewayCore`; Serve mounts it as ingress."""


from typing import Any

from llmft.serving.gateway.protocol import ApiError


def create_app(core: Any) -> Any:
    """A FastAPI app with /v1/completions, /v1/chat/completions, /v1/models and ops routes."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="llmft serving", docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ApiError(exc.status_code, str(exc.detail), "invalid_request_error", code="not_found"
                       if exc.status_code == 404 else None)
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        err = ApiError(500, f"internal error: {type(exc).__name__}", "server_error", code="internal_error")
        return JSONResponse(err.body(), status_code=500)

    async def _complete(kind: str, request: Request) -> Any:
        reply = await core.complete(kind, await request.body(), request.headers.get("authorization"),
                                   request.headers.get("x-llmft-colour"))
        if reply.stream is not None:
            return StreamingResponse(reply.stream, media_type="text/event-stream", headers=reply.headers)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await _complete("completion", request)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _complete("chat", request)

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        return await core.models(request.headers.get("authorization"))

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"ok": True, "live": core.policy.live, "mode": core.policy.mode, "generation": core.policy.generation}

    @app.get("/llmft/status")
    async def status(request: Request, window_s: float = 30.0) -> Any:
        return core.status(request.headers.get("authorization"), window_s)

    return app

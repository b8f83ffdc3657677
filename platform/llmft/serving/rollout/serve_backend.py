"""`ServingBackend` on a running Serve application: declarative deploys + the gateway's HTTP routes.

Traffic changes re-deploy the *currently deployed* Serve config with only the gateway's
`user_config` changed (Serve REST API, as `serve deploy` does), so no replica restarts; the
gateway's `/healthz` reports the policy generation, which is how "effective" is measured.
"""

from __future__ import annotations

import time
from typing import Any

from llmft.errors import ConflictError, LlmftError
from llmft.serving.app_config import with_traffic


def serve_client(dashboard_url: str) -> Any:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    return ServeSubmissionClient(dashboard_url)


def deployed_config(dashboard_url: str) -> dict:
    """The Serve config now deployed (all applications: a deploy replaces the whole set)."""
    details = serve_client(dashboard_url).get_serve_details()
    apps = [a["deployed_app_config"] for a in (details.get("applications") or {}).values()
            if a.get("deployed_app_config")]
    http = details.get("http_options") or {}
    return {"http_options": {"host": http.get("host", "127.0.0.1"), "port": http.get("port", 8000)},
            "applications": apps}


class ServeBackend:
    def __init__(self, *, base_url: str, dashboard_url: str, app_name: str, api_key: str,
                 probes: list[tuple[str, str]] | None = None, timeout_s: float = 60.0):
        import httpx

        self.base_url, self.dashboard_url, self.app_name = base_url.rstrip("/"), dashboard_url, app_name
        self.probes = probes or []
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {api_key}"})

    def _get(self, path: str, **params: Any) -> dict:
        resp = self.http.get(path, params=params)
        if resp.status_code != 200:
            raise LlmftError(f"GET {self.base_url}{path}: HTTP {resp.status_code} {resp.text[:200]}")
        return resp.json()

    def get_traffic(self) -> dict:
        return self._get("/llmft/status")["traffic"]

    def apply_traffic(self, traffic: dict, timeout_s: float = 60.0) -> float:
        started = time.perf_counter()
        config = with_traffic(deployed_config(self.dashboard_url), self.app_name, traffic)
        serve_client(self.dashboard_url).deploy_applications(config)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self._get("/healthz").get("generation") == traffic["generation"]:
                    return time.perf_counter() - started
            except Exception:  # noqa: BLE001 - the proxy may blink; keep polling until the deadline
                pass
            time.sleep(0.05)
        raise ConflictError(f"gateway did not pick up traffic generation {traffic['generation']} in {timeout_s}s")

    def smoke(self, colour: str, model: str, prompts: list[str]) -> list[dict]:
        out = []
        for prompt in prompts:
            resp = self.http.post("/v1/completions", headers={"x-llmft-colour": colour},
                                  json={"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0})
            body = resp.json()
            if resp.status_code == 200:
                out.append({"ok": True, "text": body["choices"][0]["text"] or body["choices"][0]["finish_reason"],
                            "served": body.get("llmft")})
            else:
                out.append({"ok": False, "error": body.get("error", {}).get("message", resp.text[:200])})
        return out

    def stats(self, colour: str, window_s: float) -> dict:
        return self._get("/llmft/status", window_s=window_s)["stats"]

    def probe_quality(self, colour: str, model: str) -> float | None:
        """Share of probe prompts whose answer contains the expected text (None without probes)."""
        if not self.probes:
            return None
        hits = 0
        for prompt, expected in self.probes:
            res = self.smoke(colour, model, [prompt])[0]
            hits += bool(res.get("ok") and expected in res.get("text", ""))
        return hits / len(self.probes)

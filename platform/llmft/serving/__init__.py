"""Serving, in layers: `engine/` (runs a batch on a replica), `gateway/` (the OpenAI surface in front
of two colours), `app` (the Ray Serve deployments; `llmft.serving.app:build_app`), `rollout/` (moves
traffic between colours). Nothing here imports Ray at module level except `app`.
"""

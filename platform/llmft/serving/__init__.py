"""Serving: engine (transformers + PEFT, multi-LoRA), OpenAI protocol, tenancy, traffic policy, rollouts.

Nothing here imports Ray at module level; the Serve deployments live in `serve_apps/`.
"""

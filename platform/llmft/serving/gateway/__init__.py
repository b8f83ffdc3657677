"""The gateway layer: the OpenAI protocol, API-key access and tenancy, the traffic policy, request
metrics, the gateway core and its HTTP app. No Ray (colours are reached through backends)."""

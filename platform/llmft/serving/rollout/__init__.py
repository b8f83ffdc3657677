"""The rollout layer: deployments owned per tenant, blue-green rollouts (standby, checks, shadow /
canary, flip, rollback), the SLO watch, and the Serve backend that applies every change declaratively."""

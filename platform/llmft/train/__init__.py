"""Fine-tuning: a Ray-free core (data, methods, loop, checkpoints, guards, privacy, policy) under a thin Ray Train layer."""

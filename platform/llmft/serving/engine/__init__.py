"""The engine layer: the engine interface and request object, the PEFT engine, batched LoRA, stopping,
and the one adapter cache (sources, hash verification, LRU). No Ray."""

"""llmft: fine-tune open-weight LLMs on private data with Ray, and ship the result safely."""

__version__ = "0.1.0"

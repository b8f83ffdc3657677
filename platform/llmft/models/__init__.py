"""Base models and tokenizers: resolution, identity, loading, and the built-in tiny model.

Importing this package is cheap: torch and transformers are imported inside the functions.
"""

from llmft.models.loading import BUILTIN, load_base, load_tokenizer, model_identity, resolve_base
from llmft.models.tiny import CHAT_TEMPLATE, TINY_NAME, build_tiny_base

__all__ = [
    "BUILTIN",
    "CHAT_TEMPLATE",
    "TINY_NAME",
    "build_tiny_base",
    "load_base",
    "load_tokenizer",
    "model_identity",
    "resolve_base",
]

"""Resolve, identify and load base models and tokenizers from local directories.

The built-in `tiny` model goes through exactly the path a user's real model takes:
a directory with `config.json`, loaded by `AutoModelForCausalLM` / `AutoTokenizer`.
Nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any, Iterator

from llmft.errors import IntegrityError, LlmftError, NotFoundError
from llmft.manifest import MANIFEST_NAME, build_manifest, read_manifest, verify_tree

BUILTIN = ("tiny",)
_DTYPES = ("float32", "float16", "bfloat16")


def model_identity(path: Path | str, name: str | None = None) -> dict:
    """Name plus the sha256 digest of the files as they are now (the manifest file itself excluded)."""
    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"model directory {path} not found")
    manifest = build_manifest(path)
    return {"name": name or _recorded_name(path) or path.name, "sha256": manifest.digest, "files": len(manifest.files)}


def _recorded_name(path: Path) -> str | None:
    if not (path / MANIFEST_NAME).is_file():
        return None
    try:
        return read_manifest(path).meta.get("name")
    except (ValueError, KeyError):
        return None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_tiny() -> Path:
    """The tiny model under the configured models dir, built (default seed) on first use.

    A file lock keeps two processes (e.g. two Ray workers) from building it at once.
    """
    from llmft.settings import Settings

    target = Settings.from_env().models_dir / "tiny"
    if (target / "config.json").is_file() and (target / MANIFEST_NAME).is_file():
        return target
    with _exclusive(target.parent / ".tiny.lock"):
        if not ((target / "config.json").is_file() and (target / MANIFEST_NAME).is_file()):
            from llmft.models.tiny import build_tiny_base

            build_tiny_base(target, overwrite=True)
    return target


def resolve_base(ref: str | Path) -> Path:
    """A local model directory (must hold config.json), or a built-in name such as `tiny`.

    A built-in name wins over a same-named relative directory; write `./tiny` for the latter.
    """
    text = str(ref)
    if isinstance(ref, str) and text in BUILTIN:
        return _ensure_tiny()
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise NotFoundError(f"base model '{text}': directory {path} has no config.json")
        return path.resolve()
    raise NotFoundError(
        f"base model '{text}' not found: not a local model directory, nor a built-in name ({', '.join(BUILTIN)})"
    )


def _identity(path: Path, name: str | None, verify: bool) -> dict:
    """Recorded identity when a manifest exists (hashing a large model per load is costly); `verify` re-hashes."""
    if verify:
        manifest = verify_tree(path)
    elif (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
    else:
        return model_identity(path, name)
    return {"name": name or manifest.meta.get("name") or path.name, "sha256": manifest.digest,
            "files": len(manifest.files)}


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in _DTYPES:
        return getattr(torch, dtype.removeprefix("torch."))
    raise LlmftError(f"dtype={dtype!r}: expected one of {', '.join(_DTYPES)}")


def _ensure_pad(tokenizer: Any) -> None:
    """Real base models often ship without a pad token; padding with eos is the usual choice."""
    if tokenizer.pad_token is not None:
        return
    fallback = tokenizer.eos_token or tokenizer.unk_token
    if fallback is None:
        raise LlmftError(f"tokenizer {tokenizer.name_or_path}: no pad, eos or unk token to pad with")
    tokenizer.pad_token = fallback


def load_tokenizer(ref: str | Path, *, padding_side: str = "right") -> Any:
    """`AutoTokenizer.from_pretrained` on the resolved directory, with a pad token and padding side set.

    transformers 5.23 does not save `padding_side`, so it is always set here: right for
    training, left for batched generation.
    """
    if padding_side not in ("left", "right"):
        raise LlmftError(f"padding_side={padding_side!r}: expected 'left' or 'right'")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(ref))
    _ensure_pad(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def load_base(ref: str | Path, *, dtype: Any = None, padding_side: str = "right", device: Any = None,
              verify: bool = False, name: str | None = None) -> tuple[Any, Any, dict]:
    """(model, tokenizer, identity) through `AutoModelForCausalLM.from_pretrained`, as for any real model.

    `verify=True` re-hashes every file against manifest.json first and raises IntegrityError
    naming the first file that changed (or saying there is no manifest).
    """
    path = resolve_base(ref)
    identity = _identity(path, name or (str(ref) if str(ref) in BUILTIN else None), verify)
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(path, padding_side=padding_side)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, tokenizer, identity


__all__ = ["BUILTIN", "IntegrityError", "load_base", "load_tokenizer", "model_identity", "resolve_base"]

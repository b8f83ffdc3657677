"""Checkpoint format: adapter (PEFT) or full weights + optimizer + RNG + data position, sealed by a sha256 manifest.

Layout of one checkpoint directory `checkpoint_step_000040/`:
  adapter/ (adapter_config.json, adapter_model.safetensors)  or  model/ (config + safetensors)
  optimizer.pt   optimizer + scheduler state (replicated strategies only)
  rng.pt         python / numpy / torch RNG state of every rank
  state.json     step, epoch, batch (data position), val_loss, lr_scale, rollbacks, epsilon
  manifest.json  sha256 of every file above (llmft.manifest); a checkpoint failing it is skipped
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmft.errors import IntegrityError
from llmft.manifest import read_manifest, sha256_file, verify_tree, write_manifest

PREFIX = "checkpoint_step_"


def dir_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def step_of(name: str) -> int | None:
    base = name.rstrip("/").rsplit("/", 1)[-1]
    if not base.startswith(PREFIX):
        return None
    try:
        return int(base[len(PREFIX):])
    except ValueError:
        return None


@dataclass
class TrainState:
    """Where training stands: enough to continue bit-for-bit on the same data order."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch index within `epoch`
    val_loss: float | None = None
    best_val_loss: float | None = None
    lr_scale: float = 1.0
    rollbacks: int = 0
    epsilon: float | None = None
    extra: dict = field(default_factory=dict)


def rng_state() -> dict:
    import numpy as np
    import torch

    out = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out: Path, *, model: Any, trainable: dict, optimizer_state: dict | None, rng: list[dict],
         state: TrainState, meta: dict | None = None) -> str:
    """Write a checkpoint directory and its manifest; returns the manifest digest."""
    import torch
    from peft import PeftModel

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        save_adapter(model, trainable, out / "adapter")
    else:
        model.save_pretrained(out / "model", state_dict=trainable, safe_serialization=True)
    if optimizer_state is not None:
        torch.save(optimizer_state, out / "optimizer.pt")
    torch.save(rng, out / "rng.pt")
    (out / "state.json").write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
    return write_manifest(out, meta={"step": state.step, **(meta or {})}).digest


def save_adapter(model: Any, adapter_state: dict, out: Path) -> None:
    """Write an adapter in PEFT's on-disk format from an already-gathered adapter state dict.

    PEFT's own `save_pretrained(state_dict=...)` expects the *whole* model's state dict and filters
    it again, which loses `modules_to_save` weights when handed the adapter's; the gathered state
    (from any strategy, sharded ones included) is exactly what the file must hold.
    """
    import copy

    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(model.peft_config[model.active_adapter])
    config.inference_mode = True
    config.save_pretrained(str(out))
    save_file({k: v.detach().contiguous() for k, v in adapter_state.items()}, str(out / "adapter_model.safetensors"),
              metadata={"format": "pt"})


def weights_path(ckpt: Path) -> Path:
    """The weights file that identifies a checkpoint's trained parameters."""
    ckpt = Path(ckpt)
    if (ckpt / "adapter").is_dir():
        return ckpt / "adapter" / "adapter_model.safetensors"
    return ckpt / "model" / "model.safetensors"


@dataclass
class Loaded:
    trainable: dict
    optimizer_state: dict | None
    rng: list[dict]
    state: TrainState
    path: Path


def load(ckpt: Path) -> Loaded:
    """Verify the manifest, then read a checkpoint (IntegrityError when any file fails its hash)."""
    import torch
    from safetensors.torch import load_file

    ckpt = Path(ckpt)
    verify_tree(ckpt)
    trainable = load_file(str(weights_path(ckpt)))
    opt = torch.load(ckpt / "optimizer.pt", weights_only=False) if (ckpt / "optimizer.pt").is_file() else None
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    state = TrainState(**json.loads((ckpt / "state.json").read_text()))
    return Loaded(trainable, opt, rng, state, ckpt)


def _fs(uri: str) -> tuple[Any, str]:
    from llmft import storage

    return storage.filesystem(uri)


def list_checkpoints(run_uri: str) -> list[tuple[int, str]]:
    """(step, uri) of every `checkpoint_step_*` directory under a run, newest first."""
    import pyarrow.fs as pafs

    fs, root = _fs(run_uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return []
    found = []
    for info in infos:
        step = step_of(info.path)
        if info.type == pafs.FileType.Directory and step is not None:
            prefix = run_uri.split("://", 1)[0] + "://" if "://" in run_uri else ""
            found.append((step, prefix + info.path if prefix else info.path))
    return sorted(found, reverse=True)


def materialize(uri: str, scratch: Path) -> Path:
    """A local directory with the checkpoint's files (itself when local)."""
    import pyarrow.fs as pafs

    if "://" not in uri or uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    fs, path = _fs(uri)
    dest = Path(scratch) / Path(path).name
    pafs.copy_files(path, str(dest), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return dest


def latest_good(candidates: list[str], scratch: Path | None = None, log: Any = print) -> Loaded | None:
    """Load the first candidate that passes its manifest; a corrupt one is reported and skipped."""
    scratch = Path(scratch or tempfile.mkdtemp(prefix="llmft-ckpt-"))
    for uri in candidates:
        try:
            return load(materialize(uri, scratch))
        except (IntegrityError, FileNotFoundError, OSError, ValueError, KeyError) as exc:
            log(f"checkpoint {uri} skipped: {exc}")
    return None


def retention(entries: list[tuple[int, float | None]], keep_last: int) -> set[int]:
    """Steps to delete: everything except the last `keep_last` and the best (lowest val loss)."""
    steps = sorted(s for s, _ in entries)
    keep = set(steps[-keep_last:])
    scored = [(v, s) for s, v in entries if v is not None]
    if scored:
        keep.add(min(scored)[1])
    return set(steps) - keep


def prune(run_uri: str, keep_last: int, log: Any = print) -> list[int]:
    """Apply `retention` to a run's checkpoint directories (scores read from their manifests)."""
    import pyarrow.fs as pafs

    fs, _ = _fs(run_uri)
    entries = []
    for step, uri in list_checkpoints(run_uri):
        val = None
        path = _fs(uri)[1] if "://" in uri else uri
        try:
            with fs.open_input_stream(f"{path}/manifest.json") as fh:
                val = json.loads(fh.read().decode()).get("meta", {}).get("val_loss")
        except (FileNotFoundError, OSError, ValueError):
            pass
        entries.append((step, val, path))
    doomed = retention([(s, v) for s, v, _ in entries], keep_last)
    for step, _, path in entries:
        if step in doomed:
            try:
                fs.delete_dir(path)
            except (FileNotFoundError, OSError) as exc:  # pragma: no cover
                log(f"could not prune {path}: {exc}")
    del pafs
    return sorted(doomed)


def sha256_of(path: Path) -> str:
    return sha256_file(Path(path))


def manifest_digest(ckpt: Path) -> str:
    return read_manifest(ckpt).digest


def copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)

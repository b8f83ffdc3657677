"""Catalogue entry: a full disk while a checkpoint is written loses nothing.

The write fails with ENOSPC naming the cause; the half-written directory has no manifest, so
resume skips it for the previous checkpoint, whose files still verify and load.
"""

from __future__ import annotations

import errno

import pytest


@pytest.fixture
def lora_model(tiny_base_dir):
    from peft import LoraConfig, get_peft_model

    from llmft.models.loading import load_base

    model, _, _ = load_base(tiny_base_dir)
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))


def _save(ckpt_mod, path, model, step):
    from llmft.train.methods import trainable_state

    return ckpt_mod.save(path, model=model, trainable=trainable_state(model), optimizer_state={"step": step},
                         rng=[ckpt_mod.rng_state()], state=ckpt_mod.TrainState(step=step))


def test_full_disk_on_checkpoint_write_keeps_the_previous_checkpoint(lora_model, tmp_path, monkeypatch):
    import torch

    from llmft.train import checkpointing as ck

    run = tmp_path / "run"
    good = run / ck.dir_name(4)
    digest = _save(ck, good, lora_model, 4)

    real_save = torch.save

    def full_disk(obj, f, *a, **kw):  # the adapter weights got written; the optimizer state does not fit
        if str(f).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError) as err:
        _save(ck, run / ck.dir_name(8), lora_model, 8)
    assert err.value.errno == errno.ENOSPC and "optimizer.pt" in str(err.value)
    monkeypatch.setattr(torch, "save", real_save)

    partial = run / ck.dir_name(8)
    assert partial.is_dir() and not (partial / "manifest.json").exists()  # never sealed
    skipped: list[str] = []
    candidates = [uri for _, uri in ck.list_checkpoints(str(run))]
    assert candidates[0].endswith(ck.dir_name(8))  # the newest on disk is the broken one...
    loaded = ck.latest_good(candidates, scratch=tmp_path / "scratch", log=skipped.append)
    assert loaded is not None and loaded.state.step == 4  # ...resume takes the previous, intact one
    assert skipped and ck.dir_name(8) in skipped[0]
    assert ck.manifest_digest(good) == digest  # nothing of the good checkpoint changed

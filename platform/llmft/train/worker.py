"""One training worker from start to finish, Ray-free: the Ray layer (trainer.py) only supplies a Runtime.

The Session sets up (model, data, engine, resume), then runs the step loop (guards and
rollback, validation, checkpoints) to an outcome dict. What a Runtime provides is runtime.py's;
where rank 0 leaves the outcome, outcome.py's.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmft.config.training import TrainingSpec
from llmft.train import checkpointing as ck
from llmft.train.data import BatchSchedule, collate_eval, tokenize_rows, total_steps
from llmft.train.guards import DivergenceGuard
from llmft.train.loop import Progress, micro_loss, model_inputs
from llmft.train.runtime import Runtime


def seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Session:
    """State of one worker's run; `run()` returns the outcome dict (rank 0's is authoritative)."""

    def __init__(self, config: dict, rt: Runtime, tracker: Any = None, recorder: Any = None) -> None:
        import torch

        self.cfg = config
        self.spec = TrainingSpec.model_validate(config["spec"])
        self.rt = rt
        self.tracker = tracker
        self.recorder = recorder
        self.debug = config.get("debug", {})
        torch.set_num_threads(self.spec.resources.torch_threads)
        if self.spec.resources.use_gpu:
            torch.backends.cuda.matmul.allow_tf32 = False
        torch.use_deterministic_algorithms(True, warn_only=True)

    def log(self, text: str) -> None:
        """One line on the worker's stdout (rank 0), which Ray forwards to the driver once.

        Not `print`: Ray Train V2 patches it into its logger, which also tees to a redirected
        stdout, and each progress line reached the user twice.
        """
        if self.rt.rank == 0:
            sys.stdout.write(f"[llmft.train] {text}\n")
            sys.stdout.flush()

    def event(self, message: str, level: str = "info", data: dict | None = None) -> None:
        self.log(message)
        if self.rt.rank == 0 and self.recorder is not None:
            self.recorder.event(message, level, data)

    # ---- set-up -------------------------------------------------------------------------------------------
    def setup(self) -> None:
        from llmft.train.methods import load_trainable
        from llmft.train.strategies import build_engine

        spec = self.spec
        seed_all(spec.seed)  # identical init (LoRA A matrices, soft prompt) on every rank
        self.model, self.tokenizer, self.base_identity = load_trainable(spec, self.rt.device)
        if self.rt.device.type != "cpu" and spec.method.value != "qlora":
            self.model.to(self.rt.device)
        limit, how = spec.data.max_seq_len, spec.data.truncation
        self.train_split = tokenize_rows(self.tokenizer, self.rt.rows("train"), limit, how)
        self.val_split = tokenize_rows(self.tokenizer, self.rt.rows("validation"), limit, how)
        train, val = self.train_split.examples, self.val_split.examples
        self.val = val[self.rt.rank::self.rt.world_size]
        self.plan = BatchSchedule(train, spec.optim.batch_size, self.rt.world_size, spec.seed, spec.data.packing,
                              spec.data.max_seq_len, self.tokenizer.pad_token_id)
        self.total_steps = total_steps(spec, self.plan.batches_per_epoch, len(train), self.rt.world_size)
        self.privacy = self.poisson = None
        if spec.privacy.enabled:
            from llmft.train.privacy import PoissonBatches, PrivateEngine

            q = min(1.0, spec.optim.batch_size * self.rt.world_size / len(train))
            self.engine = self.privacy = PrivateEngine(self.model, spec, self.total_steps, self.rt.world_size,
                                                       self.rt.rank, len(train))
            self.poisson = PoissonBatches(train, self.rt.rank, self.rt.world_size, self.privacy.sample_rate,
                                          spec.seed, self.tokenizer.pad_token_id)
            self.event(f"DP-SGD: sample rate {q:.4f}, noise multiplier {self.privacy.sigma:.3f} for "
                       f"epsilon {spec.privacy.target_epsilon:g} at delta {spec.privacy.delta:g}")
        else:
            self.engine = build_engine(self.model, spec, self.total_steps, self.rt.world_size, self.rt.device)
        self.state = ck.TrainState()
        self.event(f"data: {len(train)} train examples ({self.train_split.summary()} at max_seq_len {limit}), "
                   f"{len(val)} validation ({self.val_split.summary()}), {self.plan.batches_per_epoch} "
                   f"batches/epoch/worker, {self.total_steps} steps",
                   "warning" if self.train_split.cut or self.train_split.dropped else "info",
                   {"truncation": how, "max_seq_len": limit, "train": self.train_split.to_dict(),
                    "validation": self.val_split.to_dict()})

    def restore(self) -> bool:
        """Resume from the newest checkpoint that passes its hash check."""
        candidates = self.rt.checkpoint_candidates()
        if not candidates:
            return False
        loaded = ck.latest_good(candidates, log=lambda m: self.event(m, "warning"))
        if loaded is None:
            self.event("no checkpoint passed its hash check: starting from scratch", "warning")
            return False
        self._apply(loaded.trainable, loaded.optimizer_state, loaded.rng, loaded.state)
        self.event(f"resumed from {loaded.path.name} (step {self.state.step}, epoch {self.state.epoch}, "
                   f"batch {self.state.batch})", data={"step": self.state.step})
        return True

    def _apply(self, trainable: dict, opt: dict | None, rng: list, state: ck.TrainState) -> None:
        self.engine.load_trainable(trainable)
        if opt is not None:
            self.engine.load_optimizer_state(opt)
        if self.rt.rank < len(rng):
            ck.set_rng_state(rng[self.rt.rank])
        self.state = copy.deepcopy(state)
        if self.privacy is not None:
            self.privacy.restore_accounting(state.step)

    # ---- the loop -----------------------------------------------------------------------------------------
    def _batches(self):
        """Micro-batches from the saved data position onward, across epochs; updates the position."""
        while True:
            for b, batch in self.plan.batches(self.state.epoch, self.rt.rank, self.state.batch):
                self.state.batch = b + 1
                yield {k: (v.to(self.rt.device) if hasattr(v, "to") else v) for k, v in batch.items()}
            self.state.epoch += 1
            self.state.batch = 0
            self.on_epoch_end()

    def on_epoch_end(self) -> None:
        if self.privacy is not None:
            eps = self.privacy.epsilon()
            self.event(f"epoch {self.state.epoch} done: epsilon spent {eps:.4f}", data={"epsilon": eps})

    def _dp_batch(self) -> dict:
        """The Poisson batch of the current step (None -> an empty draw, handled by the engine)."""
        import torch

        batch = self.poisson.batch(self.state.step)
        self.privacy.empty = batch is None
        if batch is None:
            return {"input_ids": torch.zeros((0, 1), dtype=torch.long), "n_useful": 0}
        return {k: (v.to(self.rt.device) if hasattr(v, "to") else v) for k, v in batch.items()}

    def validate(self) -> float | None:
        import torch

        model = self.engine.model
        model.eval()
        total = count = 0.0
        with torch.no_grad():
            for batch in collate_eval(self.val, self.tokenizer.pad_token_id, self.spec.optim.batch_size):
                batch = {k: (v.to(self.rt.device) if hasattr(v, "to") else v) for k, v in batch.items()}
                n = int((batch["labels"][:, 1:] != -100).sum())
                loss = micro_loss(model, batch, self.spec.precision, self.rt.device.type)
                total += float(loss) * n
                count += n
        model.train()
        total, count = self.rt.all_reduce_sum([total, count])
        return total / count if count else None

    def snapshot(self) -> dict:
        """In-memory copy of everything a rollback restores (gathering is a collective under FSDP / ZeRO-3)."""
        return {"trainable": self.engine.full_trainable_state(), "opt": copy.deepcopy(self.engine.optimizer_state()),
                "state": copy.deepcopy(self.state)}

    def checkpoint(self, final: bool = False) -> dict:
        """Save a checkpoint (rank 0 writes); returns the snapshot of the same state, so the rollback
        point does not gather weights and optimizer a second time."""
        good = self.snapshot()
        rngs = self.rt.gather(ck.rng_state())
        metrics = {"step": self.state.step, "val_loss": self.state.val_loss, "epoch": self.state.epoch,
                   "final": final, "epsilon": self.state.epsilon}
        name = ck.dir_name(self.state.step)
        if self.rt.rank != 0:
            self.rt.report(metrics, None, None)
            return good
        with tempfile.TemporaryDirectory(prefix="llmft-ckpt-") as tmp:
            out = Path(tmp) / name
            digest = ck.save(out, model=self.engine.inner, trainable=good["trainable"],
                             optimizer_state=good["opt"], rng=rngs, state=self.state,
                             meta={"val_loss": self.state.val_loss, "final": final})
            sha = ck.sha256_of(ck.weights_path(out))
            self.rt.report({**metrics, "manifest": digest, "weights_sha256": sha}, out, name)
        uri = f"{self.cfg['run_uri'].rstrip('/')}/{name}"
        self.last_checkpoint = {"uri": uri, "step": self.state.step, "manifest": digest, "weights_sha256": sha}
        if self.recorder is not None:
            self.recorder.checkpoint(self.state.step, uri, {"val_loss": self.state.val_loss, "final": final}, digest)
        pruned = ck.prune(self.cfg["run_uri"], self.spec.checkpoint.keep_last, log=self.log)
        if pruned:
            self.log(f"pruned checkpoints at steps {pruned}")
        return good

    def run(self) -> dict:
        import torch

        spec = self.spec
        self.setup()
        if not self.restore():
            seed_all(spec.seed * 1000 + self.rt.rank + 1)  # dropout differs per rank, reproducibly
        guard = DivergenceGuard(spec.guards)
        good = self.snapshot()
        progress = Progress(self.total_steps, start_step=self.state.step)
        batches = self._batches()
        self.last_checkpoint = None
        self._pid_hook()
        stop_reason = None
        self._fired: set[int] = set()
        started = time.perf_counter()
        while self.state.step < self.total_steps:
            if self.privacy is not None and self.privacy.epsilon() > spec.privacy.target_epsilon * 1.001:
                stop_reason = f"privacy budget reached at step {self.state.step} (epsilon {self.state.epsilon:.3f})"
                break
            losses, tokens, useful = 0.0, 0, 0
            for i in range(spec.optim.grad_accum):
                batch = self._dp_batch() if self.privacy is not None else next(batches)
                last = i == spec.optim.grad_accum - 1
                with self.engine.sync_context(last):
                    loss = self._forward(batch)
                    self.engine.backward(loss)
                losses += float(loss.detach())
                tokens += int(batch["input_ids"].numel())
                useful += int(batch["n_useful"])
            grad_norm = self.engine.step()
            self.state.step += 1
            mean_loss, all_tokens, all_useful = self.rt.all_reduce_sum(
                [losses / spec.optim.grad_accum, float(tokens), float(useful)])
            mean_loss /= self.rt.world_size
            progress.add(int(all_tokens), int(all_useful))
            if self.state.step in self.debug.get("inject_nan_at", ()) and self.state.step not in self._fired:
                self._fired.add(self.state.step)  # test hook: a NaN loss, once per listed step
                mean_loss = float("nan")
            reason = guard.check(self.state.step, mean_loss, grad_norm)
            if reason is not None:
                if self.state.rollbacks >= 1:
                    stop_reason = f"diverged after rollback: {reason}"
                    self.event(stop_reason, "error")
                    break
                self._apply(good["trainable"], good["opt"], [], good["state"])
                self.state.rollbacks += 1
                self.state.lr_scale *= spec.guards.lr_backoff
                self.engine.scale_lr(spec.guards.lr_backoff)
                guard.reset()
                batches = self._batches()
                self.event(f"divergence: {reason}; rolled back to step {self.state.step} with lr x"
                           f"{self.state.lr_scale:g}", "warning", {"reason": reason})
                continue
            if self.privacy is not None:
                self.state.epsilon = self.privacy.epsilon()
                if self.state.step % self.poisson.steps_per_epoch == 0:
                    self.state.epoch += 1
                    self.on_epoch_end()
            text, extra = progress.line(self.state.step, mean_loss, self.engine.lr())
            if self.state.step % max(1, self.debug.get("log_every", 1)) == 0 or self.state.step == self.total_steps:
                self.log(text)
            self._pid_hook()
            metrics = {"loss": mean_loss, "grad_norm": grad_norm, "lr": self.engine.lr(),
                       "tokens_per_s": extra["tokens_per_s"]}
            if self.state.epsilon is not None:
                metrics["epsilon"] = self.state.epsilon
            at_end = self.state.step >= self.total_steps
            if self.state.step % spec.data.validation_every == 0 or at_end or \
                    self.state.step % spec.checkpoint.every_n_steps == 0:
                self.state.val_loss = self.validate()
                if self.state.val_loss is not None:
                    metrics["val_loss"] = self.state.val_loss
                    best = self.state.best_val_loss
                    self.state.best_val_loss = self.state.val_loss if best is None else min(best, self.state.val_loss)
            if self.tracker is not None and self.rt.rank == 0:
                self.tracker.log_metrics(metrics, self.state.step)
            if self.state.step % spec.checkpoint.every_n_steps == 0 or at_end:
                good = self.checkpoint(final=at_end)
            if self.debug.get("step_delay_s"):
                time.sleep(float(self.debug["step_delay_s"]))
            if self.debug.get("stop_at_step") == self.state.step:  # test hook: an interruption, no final save
                stop_reason = f"interrupted at step {self.state.step} (debug.stop_at_step)"
                break
        del torch
        elapsed = time.perf_counter() - started
        outcome = {
            "status": ("failed" if stop_reason and "diverged" in stop_reason else
                       "interrupted" if stop_reason and "interrupted" in stop_reason else "succeeded"),
            "reason": stop_reason, "steps": self.state.step, "total_steps": self.total_steps,
            "val_loss": self.state.val_loss, "best_val_loss": self.state.best_val_loss,
            "epsilon": self.state.epsilon, "rollbacks": self.state.rollbacks,
            "tokens": progress.tokens, "useful_tokens": progress.useful, "seconds": elapsed,
            **{k: v for k, v in progress.rates().items() if k != "seconds"},  # tokens/s as the progress line says
            "useful_tokens_per_s": progress.rates()["tokens_per_s"],
            "checkpoint": self.last_checkpoint, "base_model": self.base_identity,
            "data": {"truncation": spec.data.truncation, "max_seq_len": spec.data.max_seq_len,
                     "train": self.train_split.to_dict(), "validation": self.val_split.to_dict()},
        }
        if stop_reason and outcome["status"] == "failed" and self.last_checkpoint is None:
            outcome["checkpoint"] = None
        return outcome

    def _forward(self, batch: dict) -> Any:
        if self.privacy is not None:
            if self.privacy.empty:
                import torch

                return torch.zeros((), requires_grad=False)
            from llmft.train.privacy import per_example_loss

            return per_example_loss(self.engine.model, batch)
        return micro_loss(self.engine.model, batch, self.spec.precision, self.rt.device.type)

    def _pid_hook(self) -> None:
        """Test hook: publish this worker's pid and step so a test can kill it mid-run."""
        where = self.debug.get("pid_dir")
        if not where:
            return
        Path(where).mkdir(parents=True, exist_ok=True)
        Path(where, f"rank{self.rt.rank}.pid").write_text(str(os.getpid()))
        Path(where, f"rank{self.rt.rank}.step").write_text(str(self.state.step))


__all__ = ["Session", "model_inputs"]

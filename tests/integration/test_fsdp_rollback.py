"""FSDP2 rollback on every rank: a snapshot taken on 2 gloo processes and loaded back restores each
rank's own shards (weights and Adam moments), not just rank 0's. Rank 1 receives an empty gathered
state (only rank 0 holds the full tensors), so the load must broadcast from rank 0."""

import pytest

pytestmark = pytest.mark.integration


def _rank_main(rank: int, world: int, port: int, base: str, out: str) -> None:
    import os

    import torch
    import torch.distributed as dist

    from llmft.config import TrainingSpec, spec_from_dict
    from llmft.train.methods import load_trainable
    from llmft.train.strategies import build_engine

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    spec = spec_from_dict(TrainingSpec, {
        "name": "r", "tenant": "t", "base_model": base, "dataset": "x", "method": "lora",
        "distributed": {"strategy": "fsdp"}, "optim": {"learning_rate": 1e-2}})
    model, _, _ = load_trainable(spec, device=torch.device("cpu"))
    engine = build_engine(model, spec, 10, world, torch.device("cpu"))
    ids = torch.randint(5, 200, (2, 16), generator=torch.Generator().manual_seed(rank))

    def train_step() -> None:
        engine.backward(engine.model(input_ids=ids, labels=ids).loss)
        engine.step()

    def local_shards() -> dict:
        params = {n: p.to_local().clone() for n, p in engine.inner.named_parameters() if p.requires_grad}
        moments = {n: engine.optimizer.state[p]["exp_avg"].to_local().clone()
                   for n, p in engine.inner.named_parameters() if p.requires_grad}
        return {"params": params, "moments": moments}

    train_step()
    snap = {"trainable": engine.full_trainable_state(), "opt": engine.optimizer_state()}
    before = local_shards()
    train_step()
    train_step()
    moved = local_shards()
    engine.load_trainable(snap["trainable"])
    engine.load_optimizer_state(snap["opt"])
    after = local_shards()
    result = {"gathered_keys": len(snap["trainable"]),
              "moved": any(not torch.equal(moved["params"][n], before["params"][n]) for n in before["params"]),
              "params_restored": all(torch.equal(after["params"][n], before["params"][n]) for n in before["params"]),
              "moments_restored": all(torch.equal(after["moments"][n], before["moments"][n])
                                      for n in before["moments"])}
    torch.save(result, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_fsdp_snapshot_restores_every_ranks_shards(tiny_base_dir, tmp_path):
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(2, port, str(tiny_base_dir), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0]["gathered_keys"] > 0 and results[1]["gathered_keys"] == 0  # only rank 0 holds the state
    for rank, res in enumerate(results):
        assert res["moved"], f"rank {rank}: training did not change its shard"
        assert res["params_restored"] and res["moments_restored"], (rank, res)

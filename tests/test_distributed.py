"""DDP: the global-batch sampler, torchrun set-up, and 2 gloo processes reproducing 1 process step for step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _train_script import run

from vlstudy.data.sampler import ORDER_STREAM, GlobalBatchSampler
from vlstudy.distributed import DistInfo, all_gather_with_grad, setup_distributed
from vlstudy.train.checkpoint import list_checkpoints
from vlstudy.train.logging import read_log

SCRIPT = Path(__file__).with_name("_train_script.py")


def _batches(n, batch_size, world_size, **kw) -> list[list[list[int]]]:
    """[rank][batch] → item indices."""
    return [list(GlobalBatchSampler(n, batch_size, seed=3, epoch=1, rank=r, world_size=world_size, **kw))
            for r in range(world_size)]


def test_w_processes_see_the_batches_of_one_process():
    (single,) = _batches(20, 6, 1)
    ranks = _batches(20, 3, 2)
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 3  # 20 // 6; the last 2 items dropped
    assert [a + b for a, b in zip(*ranks)] == single
    assert sum(single, []) == np.random.default_rng([3, 1, ORDER_STREAM]).permutation(20)[:18].tolist()
    assert _batches(20, 6, 1) == [single]  # deterministic from (seed, epoch)
    other_epoch = list(GlobalBatchSampler(20, 6, seed=3, epoch=2))
    assert other_epoch != single


def test_resume_starts_at_a_batch_and_partial_batches_are_padded():
    (full,) = _batches(20, 6, 1)
    (tail,) = _batches(20, 6, 1, start_batch=2)
    assert tail == full[2:]
    order = np.random.default_rng([3, 1, ORDER_STREAM]).permutation(11).tolist()
    ranks = _batches(11, 2, 2, drop_last=False)  # global batches of 4: [0:4], [4:8], and [8:11] + [0:1]
    assert ranks == [[order[0:2], order[4:6], order[8:10]], [order[2:4], order[6:8], [order[10], order[0]]]]
    (single,) = _batches(11, 4, 1, drop_last=False)
    assert single[-1] == order[8:11]  # one process: no padding
    with pytest.raises(ValueError, match="start_batch 4 is outside"):
        GlobalBatchSampler(20, 6, seed=3, epoch=1, start_batch=4)


def test_setup_without_torchrun_is_a_single_cpu_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert setup_distributed() == DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="environment variable WORLD_SIZE='two' is not an integer"):
        setup_distributed()


def test_all_gather_is_the_identity_on_one_process():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    gathered = all_gather_with_grad(x)
    assert gathered is x


def _losses(log: Path) -> dict[int, dict[str, float]]:
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("loss")} for r in read_log(log)
            if r["kind"] == "train"}


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_twice_the_batch(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(SCRIPT),
               str(tmp_path / "ddp"), "--loss", "mse", "infonce", "--batch-size=4", "--max-steps=10",
               "--checkpoint-every=5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    for loss in ("mse", "infonce"):
        single = run(tmp_path / "single" / loss, loss=loss, batch_size=8, max_steps=10, checkpoint_every=5)
        ddp, one = _losses(tmp_path / "ddp" / loss / "train_log.jsonl"), _losses(single.log_path)
        assert sorted(ddp) == list(range(1, 11))  # one writer: each step logged once
        assert ddp.keys() == one.keys()
        for step in one:
            assert ddp[step].keys() == one[step].keys()
            for key, value in one[step].items():
                assert ddp[step][key] == pytest.approx(value, abs=1e-5), (loss, step, key)
        assert [p.name for p in list_checkpoints(tmp_path / "ddp" / loss / "checkpoints")] == [
            "step_00000005", "step_00000010"]
    # the loss really moved, so matching trajectories compare something
    infonce = _losses(tmp_path / "ddp" / "infonce" / "train_log.jsonl")
    assert infonce[10]["loss"] < 0.5 * infonce[1]["loss"]


def test_gathered_infonce_equals_full_batch_infonce_by_construction():
    """On one process the script's InfoNCE is the plain symmetric InfoNCE over the whole batch."""
    from _train_script import TinyNet, infonce_loss

    torch.manual_seed(0)
    model = TinyNet(0.0)
    generator = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(6, 8, generator=generator), "y": torch.randn(6, 4, generator=generator)}
    v = F.normalize(model.video(batch["x"]), dim=-1)
    t = F.normalize(model.text(batch["y"]), dim=-1)
    logits = v @ t.T / 0.1
    expected = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert infonce_loss(model, batch)["loss"].item() == pytest.approx(expected.item(), abs=1e-6)

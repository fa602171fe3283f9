"""A tiny training run for the trainer's tests: in-process, as a subprocess to SIGKILL, or under torchrun.

    python tests/_train_script.py OUT_DIR [--loss mse|infonce ...] [--batch-size B] [--max-steps N] ...
    python -m torch.distributed.run --nproc_per_node=2 --standalone tests/_train_script.py OUT_DIR ...
    python -m torch.distributed.run ... tests/_train_script.py OUT_DIR --parallel fsdp ...

With several losses, each trains in OUT_DIR/<loss>. The model has dropout and a frozen tower; the dataset adds
noise derived from (seed, epoch, index) and flags every `skip_every`-th item as a bad video, which the collate
function drops and names in the batch's "skipped" list. An FSDP run also writes ``gathered.safetensors``: every
entry of the sharded model's state dict gathered with ``DTensor.full_tensor()``, to check the consolidated export.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.distributed.tensor import DTensor
from torch.utils.data import Dataset

from vlstudy.distributed import all_gather_with_grad, cleanup_distributed, rank
from vlstudy.train.trainer import TrainConfig, Trainer, TrainSummary

IN_DIM, OUT_DIM, EMBED_DIM = 8, 4, 16


class NoisyPairs(Dataset):
    """`size` fixed (x, y) pairs with y a fixed linear map of x; each epoch adds noise from (seed, epoch, index)."""

    def __init__(self, size: int, seed: int, skip_every: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((size, IN_DIM)).astype(np.float32)
        self.y = (self.x @ rng.standard_normal((IN_DIM, OUT_DIM))).astype(np.float32)
        self.seed = seed
        self.skip_every = skip_every
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_id = f"v{index:03d}"
        if self.skip_every and index % self.skip_every == 0:
            return {"video_id": video_id, "x": None, "y": None}
        noise = np.random.default_rng([self.seed, self.epoch, index]).normal(0.0, 0.1, IN_DIM).astype(np.float32)
        x, y = torch.from_numpy(self.x[index] + noise), torch.from_numpy(self.y[index])
        return {"video_id": video_id, "x": x, "y": y}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good items; name the bad ones (x is None) in "skipped"."""
    good = [item for item in items if item["x"] is not None]
    return {
        "x": torch.stack([item["x"] for item in good]),
        "y": torch.stack([item["y"] for item in good]),
        "skipped": [item["video_id"] for item in items if item["x"] is None],
    }


class Scale(nn.Module):
    """A learnable 0-d factor, like the models' contrastive temperature (FSDP2 cannot shard 0-d parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(1.0))


class TinyNet(nn.Module):
    """A "video" MLP with dropout, a "text" tower, a regression head, and a learnable scalar that scales the output
    and divides the contrastive logits."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.video = nn.Sequential(
            nn.Linear(IN_DIM, 32), nn.LayerNorm(32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, EMBED_DIM)
        )
        self.text = nn.Linear(OUT_DIM, EMBED_DIM)
        self.head = nn.Linear(EMBED_DIM, OUT_DIM)
        self.scale = Scale()  # registered last: its parameter comes last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, IN_DIM) → (B, OUT_DIM)."""
        return self.head(self.video(x)) * self.scale.value

    def fsdp_units(self) -> list[nn.Module]:
        """FSDP shards the two towers one by one (one of them frozen); the head stays in the root unit."""
        return [self.video, self.text]


def mse_loss(model: TinyNet, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    loss = F.mse_loss(model(batch["x"]), batch["y"])
    return {"loss": loss}


def infonce_loss(model: TinyNet, batch: dict[str, Any], temperature: float = 0.1) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE of this process's rows against the features gathered from all processes."""
    v = F.normalize(model.video(batch["x"]), dim=-1)  # (B, D)
    t = F.normalize(model.text(batch["y"]), dim=-1)  # (B, D)
    v_all, t_all = all_gather_with_grad(v), all_gather_with_grad(t)  # (W*B, D)
    targets = rank() * len(v) + torch.arange(len(v))
    temperature = temperature * model.scale.value
    v2t = F.cross_entropy(v @ t_all.T / temperature, targets)
    t2v = F.cross_entropy(t @ v_all.T / temperature, targets)
    return {"loss": (v2t + t2v) / 2, "loss_v2t": v2t, "loss_t2v": t2v}


LOSSES = {"mse": mse_loss, "infonce": infonce_loss}


def run(
    out_dir: Path,
    *,
    loss: str = "mse",
    batch_size: int = 8,
    max_steps: int = 12,
    grad_accum_steps: int = 1,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    dropout: float = 0.0,
    skip_every: int | None = None,
    dataset_size: int = 48,
    step_sleep: float = 0.0,
    parallel: str = "ddp",
) -> TrainSummary:
    """Build the tiny model and data (seed 0) and train; the tower a loss does not use is frozen.

    FSDP runs build the model from seed RANK, another model on each process: the trainer starts all from rank 0's
    (seed 0, the single-process model), as DDP does.
    """
    torch.manual_seed(int(os.environ.get("RANK", "0")) if parallel == "fsdp" else 0)
    model = TinyNet(dropout)
    (model.text if loss == "mse" else model.head).requires_grad_(False)
    loss_fn = LOSSES[loss]
    if step_sleep:
        def loss_fn(model: TinyNet, batch: dict[str, Any], inner=LOSSES[loss]) -> dict[str, torch.Tensor]:
            time.sleep(step_sleep)
            return inner(model, batch)
    config = TrainConfig(
        lr=1e-2, min_lr=1e-3, warmup_steps=2, max_steps=max_steps, batch_size=batch_size,
        grad_accum_steps=grad_accum_steps, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
        log_every=1, precision="fp32", seed=0, parallel=parallel,
    )
    dataset = NoisyPairs(dataset_size, seed=0, skip_every=skip_every)
    trainer = Trainer(model, config, dataset, collate, loss_fn, out_dir)
    summary = trainer.fit()
    if trainer.sharded:
        gathered = {name: t.full_tensor() if isinstance(t, DTensor) else t for name, t in model.state_dict().items()}
        if rank() == 0:
            save_file({name: t.contiguous() for name, t in gathered.items()}, out_dir / "gathered.safetensors")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--loss", nargs="+", choices=sorted(LOSSES), default=["mse"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--grad-accum-steps", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--skip-every", type=int)
    parser.add_argument("--step-sleep", type=float, default=0.0)
    parser.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp")
    args = parser.parse_args()
    for loss in args.loss:
        run(
            args.out_dir / loss if len(args.loss) > 1 else args.out_dir, loss=loss, batch_size=args.batch_size,
            max_steps=args.max_steps, grad_accum_steps=args.grad_accum_steps,
            checkpoint_every=args.checkpoint_every, dropout=args.dropout, skip_every=args.skip_every,
            step_sleep=args.step_sleep, parallel=args.parallel,
        )
    cleanup_distributed()


if __name__ == "__main__":
    main()

"""What dropout costs a training step of the BERT-style models on this CPU (a speed lever measured, not taken).

The text LM of mPLUG-video trains without dropout since 2026-12-01 (its Bernoulli masks cost ~0.8x the rest of a
step here; README, "What the text LM without dropout changed"). ALPRO and mPLUG-2 keep BERT's dropout of 0.1, as
their official configs do. This script times the training step of two of the study's costliest runs, loaded from
the study's checkpoints exactly as their stages load them, with dropout as configured and with every dropout off
(each ``nn.Dropout``'s p set to 0, which also turns off BERT's attention-probability dropout), alternating the two
arms, and prints the median step seconds of each and their ratio (same process, same inputs):

* ``finetune_captioning@mplug2``: mPLUG-2's captioning step, 16 frames, batch 16 (the study's slowest cell);
* ``pretrain_alpro``: ALPRO's pre-training step (VTC + VTM with hard negatives + MLM), 4 frames, batch 32.

    python benchmarks/dropout_cost.py --steps 6     # about a minute on 2 CPU cores

Reads ``checkpoints/pretrain_mplug2`` and ``checkpoints/pretrain_alpro``; random frames and a fixed caption (the
step's cost does not depend on their content); writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.models.mplug2 import MPLUG2ForCaptioning
from vlstudy.tasks.common import load_model

CAPTION = "在儿童房里，一个孩子在拆玩具，一个黄色的十字不停地转着圈移动。"


def set_dropout(model: nn.Module, p: float | None, saved: dict) -> None:
    """Every ``nn.Dropout`` of `model` to `p` (None: back to the configured values kept in `saved`)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            saved.setdefault(module, module.p)
            module.p = saved[module] if p is None else p


def mplug2_captioning() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    model = load_model(MPLUG2ForCaptioning, "checkpoints/pretrain_mplug2/model", True, 16)
    video = torch.randn(16, 16, 3, model.config.video.image_size, model.config.video.image_size)
    return model, lambda m: m.caption_loss(video, [CAPTION] * 16)["loss"]


def alpro_pretraining() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    model = load_model(ALPROForPretraining, "checkpoints/pretrain_alpro/model", True, 4)
    video = torch.randn(32, 4, 3, model.config.video.image_size, model.config.video.image_size)
    ids, mask = model.tokenize([CAPTION] * 32)
    return model, lambda m: m.pretrain_losses(video, ids, mask, torch.Generator().manual_seed(0))["loss"]


def time_steps(model: nn.Module, loss_fn: Callable, steps: int) -> dict[str, float]:
    """Median seconds of a forward + backward + AdamW step, with dropout as configured and off, alternating."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    saved: dict = {}
    seconds = {"configured": [], "off": []}
    for step in range(steps + 1):
        for arm in ("configured", "off"):
            set_dropout(model, None if arm == "configured" else 0.0, saved)
            start = time.perf_counter()
            loss = loss_fn(model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step:  # the first round warms up
                seconds[arm].append(time.perf_counter() - start)
    set_dropout(model, None, saved)
    return {arm: statistics.median(s) for arm, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per arm (after one warm-up round)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, build in (("finetune_captioning@mplug2", mplug2_captioning), ("pretrain_alpro", alpro_pretraining)):
        model, loss_fn = build()
        model.train()
        p = sorted({m.p for m in model.modules() if isinstance(m, nn.Dropout)})
        median = time_steps(model, loss_fn, args.steps)
        print(f"{name}: dropout p {p}: step {median['configured']:.3f} s; all dropout off {median['off']:.3f} s; "
              f"off / configured {median['off'] / median['configured']:.2f}")


if __name__ == "__main__":
    main()

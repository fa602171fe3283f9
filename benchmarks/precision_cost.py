"""What bf16 autocast saves a training step of the study's models on this CPU (``train.precision: bf16``).

The trainer runs every stage's step under ``torch.autocast`` when ``train.precision`` asks for bf16 (on CUDA by
default, on a CPU only when asked: `vlstudy.train.parallel.autocast_dtype`). Whether that pays on a CPU depends on
the CPU: with native bf16 dot products (AVX512-BF16, AMX) a bf16 matmul runs several times faster than a float32 one,
without them it is emulated and slower. This script prints the CPU's bf16 instructions, the matmul rate in float32
and bf16, then times the training step of three of the study's costliest runs, loaded from the study's checkpoints
as their stages load them, in float32 and under the trainer's bf16 autocast (the same `autocast_dtype`), the two
arms alternating in one process, and prints the median step seconds and the loss each arm gives on the step's
batch from the same weights (how far bf16 moves a loss):

* ``pretrain_alpro``: ALPRO's pre-training step (VTC + VTM with hard negatives + MLM), 4 frames, batch 32;
* ``finetune_captioning@mplug2``: mPLUG-2's captioning step, 16 frames, batch 16 (the study's slowest cell);
* ``pretrain_mplug_video``: mPLUG-video's pre-training step (title LM through the frozen LM + contrastive), 4
  frames, batch 32.

    python benchmarks/precision_cost.py --steps 6     # about a minute on 2 CPU cores

Reads ``checkpoints/pretrain_alpro``, ``checkpoints/pretrain_mplug2`` and ``checkpoints/pretrain_mplug_video``;
random frames and a fixed caption (the step's cost does not depend on their content); writes nothing. What the
study's numbers become under bf16 is a different question, answered by running the study so:
``vlstudy study --profile bf16`` (``profiles/bf16.yaml``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vlstudy.models.mplug_video import MPLUGVideoForContrastive
from vlstudy.tasks.common import load_model
from vlstudy.tasks.pretrain_mplug_video import caption_loss
from vlstudy.train.parallel import autocast_dtype

sys.path.insert(0, str(Path(__file__).parent))
from dropout_cost import CAPTION, alpro_pretraining, mplug2_captioning  # noqa: E402  (the same two steps)
from study_profile import matmul_peak  # noqa: E402

ARMS = ("fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native bf16 instructions the CPU lists (of `BF16_FLAGS`); empty where /proc/cpuinfo is missing."""
    path = Path(cpuinfo)
    if not path.is_file():
        return []
    flags = next((line.split(":", 1)[1].split() for line in path.read_text().splitlines()
                  if line.startswith("flags")), [])
    return [f for f in BF16_FLAGS if f in flags]


def mplug_video_pretraining() -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    model = load_model(MPLUGVideoForContrastive, "checkpoints/pretrain_mplug_video/model", True, 4)
    video = torch.randn(32, 4, 3, model.config.video.image_size, model.config.video.image_size)
    texts = [CAPTION] * 32
    return model, lambda m: caption_loss(m, video, texts)["loss"] + m.contrastive_loss(video, texts)


RUNS = {"pretrain_alpro": alpro_pretraining, "finetune_captioning@mplug2": mplug2_captioning,
        "pretrain_mplug_video": mplug_video_pretraining}


def time_steps(model: nn.Module, loss_fn: Callable, steps: int) -> dict[str, dict[str, float]]:
    """Median seconds of a forward + backward + AdamW step per arm (float32, bf16 autocast as the trainer runs it),
    alternating after one warm-up round, and each arm's loss on the batch from the same starting weights."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    dtypes = {"fp32": autocast_dtype("fp32", torch.device("cpu")), "bf16": autocast_dtype("bf16", torch.device("cpu"))}
    first_loss: dict[str, float] = {}
    with torch.no_grad():
        for arm in ARMS:  # the same dropout masks in both arms: only the precision differs
            with torch.random.fork_rng(), torch.autocast("cpu", dtype=dtypes[arm], enabled=dtypes[arm] is not None):
                torch.manual_seed(0)
                first_loss[arm] = float(loss_fn(model))
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for step in range(steps + 1):
        for arm in ARMS:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtypes[arm], enabled=dtypes[arm] is not None):
                loss = loss_fn(model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step:  # the first round warms up
                seconds[arm].append(time.perf_counter() - start)
    return {arm: {"step_seconds": statistics.median(seconds[arm]), "loss": first_loss[arm]} for arm in ARMS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per arm (after one warm-up round)")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    args = parser.parse_args()
    torch.manual_seed(0)
    flags = cpu_bf16_flags()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dispatch "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {', '.join(flags) or 'none'}")
    fp32, bf16 = matmul_peak(), matmul_peak(dtype=torch.bfloat16)
    print(f"matmul 2048: fp32 {fp32 / 1e9:.0f} GFLOP/s, bf16 {bf16 / 1e9:.0f} GFLOP/s ({bf16 / fp32:.2f}x)")
    for name in args.runs:
        model, loss_fn = RUNS[name]()
        result = time_steps(model.train(), loss_fn, args.steps)
        f, b = result["fp32"], result["bf16"]
        print(f"{name}: step fp32 {f['step_seconds']:.3f} s, bf16 autocast {b['step_seconds']:.3f} s "
              f"({f['step_seconds'] / b['step_seconds']:.2f}x faster); loss on the batch {f['loss']:.4f} vs "
              f"{b['loss']:.4f}")


if __name__ == "__main__":
    main()

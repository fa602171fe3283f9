"""mPLUG-video pre-training steps at the paper's size on GPUs: samples/s, model-FLOP utilisation, peak memory.

    python benchmarks/gpu_pretrain.py                                     # one GPU, DDP path, bf16
    torchrun --standalone --nproc_per_node=8 benchmarks/gpu_pretrain.py   # 8 GPUs, DDP
    torchrun --standalone --nproc_per_node=8 benchmarks/gpu_pretrain.py --parallel fsdp
    python benchmarks/gpu_pretrain.py --tiny                              # a toy size on the CPU, in seconds
    python benchmarks/gpu_pretrain.py --flops-per-clip                    # count only, on the CPU (~1 min)

The model is the paper's pre-training set-up (Youku-mPLUG, Xu et al. 2023, Sec. 4.1 and 5.1) built from the kit's
classes: a 12-layer TimeSformer of ViT-B/16 size (width 768, 12 heads, patch 16) on 8 frames of 224x224, the
visual abstractor with 128 queries (one cross-attention + FFN block), and a frozen causal LM of GPT-3 XL shape
(Brown et al. 2020, Table 2.1: 24 layers, width 2048, 16 heads; "1.3B") with random weights (``lm_path=None``),
over a character vocabulary of `--vocab` tokens (the output layer costs 2 x width x vocab FLOPs per token, so set it
to the real tokenizer's size). Each step is the captioning LM loss of a batch of random clips and random
`--text`-character captions, backward, AdamW on the trainable parameters (video encoder, abstractor, heads).

Precision: bf16 autocast on CUDA; the frozen LM is stored in bf16 (DDP path) or kept fp32 and gathered in bf16 by
FSDP's `MixedPrecisionPolicy` (``--parallel fsdp``, the trainer's sharding: `vlstudy.train.parallel`). ``--tiny``
runs fp32 on the CPU.

Figures (rank 0 prints them; ``--json`` also writes them):

* samples/s: global batch (per-GPU batch x GPUs) / median step time, steps timed after `--warmup` steps.
* MFU: model FLOPs per step per GPU / median step time / the GPU's dense bf16 peak (`BF16_PEAK_TFLOPS`, by device
  name; ``--peak-tflops`` for others). FLOPs are counted once with ``torch.utils.flop_counter.FlopCounterMode``
  (forward + backward; the optimizer's element-wise work is not counted), with scaled-dot-product attention on its
  math backend, which does the same matmuls as the fused kernels and which the counter knows on every device.
* peak memory: ``torch.cuda.max_memory_allocated`` (CUDA) or the process's peak resident size (CPU).

`build_model` is the one place the model is constructed: adapt it when the model classes change.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vlstudy.distributed import cleanup_distributed, is_main_process, setup_distributed
from vlstudy.io import write_json
from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.mplug_video import MPLUGVideoConfig, MPLUGVideoModel
from vlstudy.models.text_lm import SPECIAL_TOKENS, TextLMConfig, train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.train.parallel import LossModule, shard_fsdp, wrap_ddp

FIRST_CJK = 0x4E00
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s, by a substring of the device name.
# The longest matching key wins ("H100 PCIE" before "H100").
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "H100 PCIE": 756.0, "GH200": 989.4, "A100": 312.0, "L40S": 362.1}


@dataclass(frozen=True)
class BenchSize:
    """The model and batch of one benchmark run (defaults: the paper's pre-training size)."""

    frames: int = 8
    image: int = 224
    video_width: int = 768
    video_layers: int = 12
    video_heads: int = 12
    queries: int = 128
    lm_width: int = 2048
    lm_layers: int = 24
    lm_heads: int = 16
    vocab: int = 25_600
    text: int = 32
    batch: int = 32


TINY = BenchSize(frames=2, image=32, video_width=32, video_layers=2, video_heads=2, queries=4, lm_width=32,
                 lm_layers=2, lm_heads=2, vocab=64, text=8, batch=2)


def build_model(size: BenchSize) -> MPLUGVideoModel:
    """mPLUG-video of `size` with an untrained LM (``lm_path=None``) over a `size.vocab`-token character tokenizer.

    Parameters are created on the default device (``with torch.device("cuda"): build_model(...)`` builds on the
    GPU; ``"meta"`` builds no storage).
    """
    characters = "".join(chr(FIRST_CJK + i) for i in range(size.vocab - len(SPECIAL_TOKENS)))
    tokenizer = train_char_tokenizer([], always_include=[characters])
    config = MPLUGVideoConfig(
        video=VideoEncoderConfig(image_size=size.image, patch_size=16, num_frames=size.frames,
                                 hidden_size=size.video_width, num_layers=size.video_layers,
                                 num_heads=size.video_heads),
        abstractor=AbstractorConfig(num_queries=size.queries, num_heads=size.video_heads),
        lm=TextLMConfig(hidden_size=size.lm_width, num_layers=size.lm_layers, num_heads=size.lm_heads,
                        max_positions=size.queries + size.text + 8, dropout=0.0),
        max_text_length=size.text + 2)
    return MPLUGVideoModel(config, tokenizer=tokenizer)


def bf16_peak(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU in FLOP/s from its name (``torch.cuda.get_device_name``), None if unknown."""
    for key, tflops in sorted(BF16_PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key in device_name.upper():
            return tflops * 1e12
    return None


def _inputs(model: MPLUGVideoModel, size: BenchSize, device: torch.device):
    """Random clips (B, T, 3, S, S) and random captions of `size.text` characters, tokenised."""
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(size.batch, size.frames, 3, size.image, size.image, generator=generator)
    codes = torch.randint(0, size.vocab - len(SPECIAL_TOKENS), (size.batch, size.text), generator=generator)
    captions = ["".join(chr(FIRST_CJK + c) for c in row) for row in codes.tolist()]
    return video.to(device), model.tokenize([""] * size.batch, captions)


def _caption_loss(model: MPLUGVideoModel, video: torch.Tensor, batch) -> torch.Tensor:
    return model(video, batch.input_ids, batch.attention_mask, batch.labels).loss


def flops_per_clip(size: BenchSize) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs of one clip at `size`, counted on the CPU without a GPU.

    The LM's cost is linear in its depth, so the model is built with 1 and 2 LM layers and the count extrapolated
    to ``size.lm_layers``: the 1.3B LM need not fit in memory.
    """
    counts = []
    for layers in (1, 2):
        small = dataclasses.replace(size, batch=1, lm_layers=layers)
        torch.manual_seed(0)
        model = build_model(small)
        video, batch = _inputs(model, small, torch.device("cpu"))
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            loss = _caption_loss(model, video, batch)
            forward = counter.get_total_flops()
            loss.backward()
        counts.append((forward, counter.get_total_flops()))
    (forward_1, step_1), (forward_2, step_2) = counts
    extra = size.lm_layers - 1
    return forward_1 + extra * (forward_2 - forward_1), step_1 + extra * (step_2 - step_1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(size: BenchSize, parallel: str, steps: int, warmup: int, peak_tflops: float | None) -> dict[str, float]:
    """Build, wrap (DDP / FSDP over the torchrun processes) and time training steps; returns the figures."""
    dist = setup_distributed()
    device, cuda = dist.device, dist.device.type == "cuda"
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(size)
    if cuda and parallel == "ddp":
        model.lm.to(torch.bfloat16)  # frozen: stored in bf16
    step_module = LossModule(model)
    if parallel == "fsdp" and dist.world_size > 1:
        shard_fsdp(step_module, model, torch.bfloat16 if cuda else None)
    elif dist.world_size > 1:
        step_module = wrap_ddp(step_module, dist, find_unused_parameters=True)  # the unused heads get no gradient
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    video, batch = _inputs(model, size, device)
    dtype = torch.bfloat16 if cuda else torch.float32

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            loss = step_module(_caption_loss, video, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    peak = peak_tflops * 1e12 if peak_tflops else bf16_peak(torch.cuda.get_device_name(device)) if cuda else None
    if cuda:
        memory = torch.cuda.max_memory_allocated(device)
    else:  # the process's peak resident size (Linux reports KiB)
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "processes": dist.world_size, "batch_per_process": size.batch, "step_s": step_s,
        "samples_per_s": size.batch * dist.world_size / step_s, "flops_per_step": flops,
        "tflops_per_s": flops / step_s / 1e12, "mfu": flops / step_s / peak if peak else None,
        "peak_memory_gib": memory / 2**30, "trainable_params": model.num_trainable, "total_params": model.num_total,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a toy size on the CPU (seconds; what the test runs)")
    parser.add_argument("--parallel", choices=["ddp", "fsdp"], default="ddp", help="with several processes")
    parser.add_argument("--batch", type=int, help="clips per process (default: 32; tiny: 2)")
    parser.add_argument("--vocab", type=int, help="LM vocabulary size (default 25,600)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of a GPU missing from the table")
    parser.add_argument("--json", help="also write the figures to this file (rank 0)")
    parser.add_argument("--flops-per-clip", action="store_true", help="only count one clip's FLOPs, on the CPU")
    args = parser.parse_args(argv)
    size = TINY if args.tiny else BenchSize()
    size = dataclasses.replace(size, **{k: v for k, v in (("batch", args.batch), ("vocab", args.vocab)) if v})
    if args.flops_per_clip:
        forward, step = flops_per_clip(size)
        print(f"one clip: forward {forward / 1e9:,.1f} GFLOP, forward + backward {step / 1e9:,.1f} GFLOP")
        return {"forward_flops_per_clip": forward, "step_flops_per_clip": step}
    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --tiny on a CPU")
    figures = run(size, args.parallel, args.steps, args.warmup, args.peak_tflops)
    if is_main_process():
        mfu = f"{figures['mfu']:.1%}" if figures["mfu"] is not None else "n/a (unknown peak: --peak-tflops)"
        print(f"{'tiny' if args.tiny else 'paper'} size, {figures['processes']} process(es), {args.parallel}: "
              f"{figures['trainable_params'] / 1e6:.1f}M trainable of {figures['total_params'] / 1e6:.1f}M parameters")
        print(f"batch {size.batch}/process: step {figures['step_s'] * 1e3:.1f} ms (median of {args.steps}), "
              f"{figures['samples_per_s']:.1f} samples/s")
        print(f"{figures['flops_per_step'] / 1e9:,.4g} GFLOP per step per process -> "
              f"{figures['tflops_per_s']:.3f} TFLOP/s, MFU {mfu}; peak memory {figures['peak_memory_gib']:.2f} GiB")
        if args.json:
            write_json(args.json, figures)
    cleanup_distributed()
    return figures


if __name__ == "__main__":
    main()

"""Model-FLOP utilisation (MFU) of one mPLUG-video training step, against a matmul peak measured in the same run.

    python benchmarks/model_mfu.py                 # bench-sized model on the CPU (fp32)
    python benchmarks/model_mfu.py --batch 16      # other sizes: --frames --image --width --layers --text
    python benchmarks/model_mfu.py --threads 1     # when other jobs share the cores

Prints, for a captioning training step (forward, backward, AdamW): step time, samples/s, the FLOPs of one step
counted with ``torch.utils.flop_counter.FlopCounterMode``, the fp32 peak of a 2048x2048 matmul timed here, and
MFU = FLOPs / step time / peak, step time and peak each the best of several runs (a shared machine disturbs
some). With a CUDA device it also runs the step under bf16 autocast against a bf16 matmul peak.

The model is bench-sized (8 frames, width 256 everywhere, 4+4 layers) so that matmuls dominate its FLOPs. FLOPs
are counted with scaled-dot-product attention forced to its math backend, because the counter has no formula
for the CPU flash kernel; the math backend does the same attention matmuls, so the count is the model's, and
the timed steps use the default kernels.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.mplug_video import MPLUGVideoConfig, MPLUGVideoModel
from vlstudy.models.text_lm import TextLMConfig, train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig

FIRST_CJK = 0x4E00


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 20) -> float:
    """Best observed FLOP/s of a square matmul (2 * size^3 FLOPs)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(args: argparse.Namespace, device: torch.device) -> tuple[MPLUGVideoModel, int]:
    """The bench-sized mPLUG-video with an untrained LM over a `args.vocab`-character vocabulary."""
    characters = "".join(chr(FIRST_CJK + i) for i in range(args.vocab))
    tokenizer = train_char_tokenizer([], always_include=[characters])
    heads = args.width // 64
    config = MPLUGVideoConfig(
        video=VideoEncoderConfig(image_size=args.image, patch_size=16, num_frames=args.frames, hidden_size=args.width,
                                 num_layers=args.layers, num_heads=heads),
        abstractor=AbstractorConfig(num_queries=args.queries, num_heads=heads),
        lm=TextLMConfig(hidden_size=args.width, num_layers=args.layers, num_heads=heads,
                        max_positions=args.queries + args.text + 8, dropout=0.0),
        max_text_length=args.text + 2)
    return MPLUGVideoModel(config, tokenizer=tokenizer).to(device).train(), len(tokenizer)


def bench_inputs(model: MPLUGVideoModel, args: argparse.Namespace, device: torch.device):
    """A batch of random clips and random captions of `args.text` characters (empty prompt)."""
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch, args.frames, 3, args.image, args.image, generator=generator)
    codes = torch.randint(0, args.vocab, (args.batch, args.text), generator=generator)
    captions = ["".join(chr(FIRST_CJK + c) for c in row) for row in codes.tolist()]
    return video.to(device), model.tokenize([""] * args.batch, captions).to(device)


def train_step(model: MPLUGVideoModel, optimizer: torch.optim.Optimizer, video, batch, dtype: torch.dtype) -> None:
    with torch.autocast(device_type=video.device.type, dtype=dtype, enabled=dtype != torch.float32):
        loss = model(video, batch.input_ids, batch.attention_mask, batch.labels).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, peak_size: int) -> None:
    torch.manual_seed(0)
    model, vocab = bench_model(args, device)
    video, batch = bench_inputs(model, args, device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        train_step(model, optimizer, video, batch, dtype)
    flops = counter.get_total_flops()
    for _ in range(args.warmup):
        train_step(model, optimizer, video, batch, dtype)
    peak_before = matmul_peak(device, dtype, peak_size)
    step_times = []
    for _ in range(args.steps):
        _sync(device)
        start = time.perf_counter()
        train_step(model, optimizer, video, batch, dtype)
        _sync(device)
        step_times.append(time.perf_counter() - start)
    step_time = min(step_times)  # best of N, like the peak: both are what the machine can do undisturbed
    peak = max(peak_before, matmul_peak(device, dtype, peak_size))  # timed before and after the steps

    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    print(f"device {device.type} ({torch.get_num_threads()} threads)  dtype {name}")
    print(f"model: {args.frames} frames at {args.image}px, width {args.width}, {args.layers} video + {args.layers} "
          f"LM layers, {args.queries} queries, {args.text} text tokens, vocabulary {vocab}; "
          f"{model.num_trainable / 1e6:.2f}M trainable of {model.num_total / 1e6:.2f}M parameters")
    print(f"batch {args.batch}: step {step_time * 1e3:.1f} ms (best of {args.steps}; median "
          f"{sorted(step_times)[len(step_times) // 2] * 1e3:.1f} ms), {args.batch / step_time:.1f} samples/s")
    print(f"FLOPs per step {flops / 1e9:.2f} G -> {flops / step_time / 1e9:.1f} GFLOP/s achieved")
    print(f"{name} matmul peak ({peak_size}x{peak_size}) {peak / 1e9:.1f} GFLOP/s "
          f"-> MFU {flops / step_time / peak:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--text", type=int, default=40)
    parser.add_argument("--vocab", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads for the step and the peak alike (1 when other jobs share the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measure(args, torch.device("cpu"), torch.float32, peak_size=2048)
    if torch.cuda.is_available():
        measure(args, torch.device("cuda"), torch.bfloat16, peak_size=8192)


if __name__ == "__main__":
    main()

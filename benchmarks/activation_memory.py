"""Activation memory and step time of one training step with and without activation checkpointing.

    python benchmarks/activation_memory.py                # the default study's model sizes, batch 8
    python benchmarks/activation_memory.py --frames 16     # other sizes: --batch --image --width --layers

For each stage's loss (mPLUG-video pre-training / captioning, classification, retrieval by matching; ALPRO
pre-training) it prints the bytes autograd saves for the backward pass (`vlstudy.train.memory`: the activation
memory, independent of allocator caching) and the forward+backward time, without and with
``activation_checkpointing_enable()`` — transformers' API, which the trainer's ``train.gradient_checkpointing``
calls. The frozen LM is a random GPT-2 of the text-LM stage's size, saved to a temporary folder with the kit's
character tokenizer, as the real pipeline reads it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vlstudy.data.prompts import PROTOCOL_TEXTS, classification_prompt
from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.alpro import ALPROConfig, ALPROForPretraining, TextEncoderConfig
from vlstudy.models.mplug_video import MPLUGVideoConfig, MPLUGVideoForClassification, MPLUGVideoForMatching
from vlstudy.models.text_lm import TextLMConfig, build_text_lm, save_text_lm, train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.train.memory import saved_activation_bytes

FIRST_CJK = 0x4E00


def stages(args: argparse.Namespace, lm_dir: Path, tokenizer):
    """(name, model, loss function) per stage, models in training mode."""
    video_config = dict(image_size=args.image, patch_size=16, num_frames=args.frames, hidden_size=args.width,
                        num_layers=args.layers, num_heads=args.width // 32)
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch, args.frames, 3, args.image, args.image, generator=generator)
    titles = ["".join(chr(FIRST_CJK + c) for c in row)
              for row in torch.randint(0, 200, (args.batch, 24), generator=generator).tolist()]

    def mplug(model_class):
        config = MPLUGVideoConfig(video=VideoEncoderConfig(**video_config), lm_path=str(lm_dir),
                                  abstractor=AbstractorConfig(num_queries=16, num_heads=args.width // 32))
        return model_class(config).train()

    retrieval = mplug(MPLUGVideoForMatching)
    caption = retrieval.tokenize([""] * args.batch, titles)
    classifier = mplug(MPLUGVideoForClassification)
    alpro = ALPROForPretraining(ALPROConfig(video=VideoEncoderConfig(**video_config),
                                            text=TextEncoderConfig(num_heads=args.width // 32)), tokenizer).train()
    ids, mask = alpro.tokenize(titles)
    yield "mPLUG-video LM loss (pre-training, captioning)", retrieval, lambda: retrieval(
        video, caption.input_ids, caption.attention_mask, caption.labels).loss
    yield "mPLUG-video classification", classifier, lambda: classifier.classification_loss(
        video, [classification_prompt(t) for t in titles], torch.arange(args.batch) % 45)["loss"]
    yield "mPLUG-video matching", retrieval, lambda: retrieval.match_loss(
        video, titles, torch.arange(args.batch) % 2 == 0)["loss"]
    yield "ALPRO pre-training (VTC + VTM)", alpro, lambda: alpro.pretrain_losses(
        video, ids, mask, torch.Generator().manual_seed(0))["loss"]


def measure(model, loss_fn) -> tuple[int, float]:
    """Saved activation bytes and the best of 3 forward+backward times (s)."""
    saved = saved_activation_bytes(loss_fn, model)
    times = []
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss_fn().backward()
        times.append(time.perf_counter() - start)
    return saved, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lm-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = train_char_tokenizer([], always_include=["".join(chr(FIRST_CJK + i) for i in range(200)),
                                                         *PROTOCOL_TEXTS])
    with tempfile.TemporaryDirectory() as tmp:
        lm = build_text_lm(TextLMConfig(hidden_size=args.width, num_layers=args.lm_layers,
                                        num_heads=args.width // 32, max_positions=256), tokenizer)
        save_text_lm(lm, tokenizer, Path(tmp) / "lm")
        print(f"{args.batch} clips x {args.frames} frames at {args.image} px, width {args.width}, {args.layers} video "
              f"layers, {args.lm_layers} LM layers, {torch.get_num_threads()} thread(s)")
        print(f"{'stage':48s} {'saved activations':>26s} {'fwd+bwd time':>22s}")
        for name, model, loss_fn in stages(args, Path(tmp) / "lm", tokenizer):
            model.activation_checkpointing_disable()
            full_bytes, full_time = measure(model, loss_fn)
            model.activation_checkpointing_enable()
            ckpt_bytes, ckpt_time = measure(model, loss_fn)
            share = ckpt_bytes / full_bytes
            print(f"{name:48s} {full_bytes / 2**20:7.1f} -> {ckpt_bytes / 2**20:5.1f} MiB ({share:4.0%})"
                  f" {full_time * 1e3:7.0f} -> {ckpt_time * 1e3:5.0f} ms")


if __name__ == "__main__":
    main()

"""Video-language pre-training of mPLUG-video on the (filtered) pre-training pool.

Youku-mPLUG pre-trains mPLUG-video by generating each video's title with the frozen LM (official
``pretrain_gpt3_freezeGPT_youku_v0``: 4 frames, lr 1e-4, 2000 warmup steps, AdamW wd 0.05, clip 3.0): the loss is
the token-mean LM loss of ``[BOS] title [EOS]`` after the video prefix, with an empty prompt. Only the video
encoder, the abstractor and the heads train. A held-out slice of the pool gives a validation loss, and a few
greedy generations show what the model says about unseen videos.

Outputs in ``paths.out``: ``model/`` (``save_pretrained`` of ``MPLUGVideoForContrastive``, or of the backbone
``MPLUGVideoModel`` without the contrastive term: trainable weights + config pointing at the LM),
``train_log.jsonl`` and ``examples.csv`` (video, reference title, generated title).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlstudy import io
from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import all_reduce_sum, is_main_process
from vlstudy.models.mplug_video import MPLUGVideoConfig, MPLUGVideoForContrastive, MPLUGVideoModel
from vlstudy.models.prompting import IGNORE_INDEX
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    load_split,
    model_train_config,
    predict,
    training_record,
    video_dataset,
    zero_loss,
)
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CONFIG", "PretrainMPLUGVideoConfig", "run", "sequence_nll"]


@dataclass
class PretrainMPLUGVideoConfig:
    """Attributes:
        model: mPLUG-video (``lm_path``: the frozen LM, by default the text-LM stage's output).
        decode: frame decoding and caching.
        train: optimisation.
        contrastive_weight: weight of a video-title contrastive loss added to the LM loss (the official
            ``use_contrastive`` option; 0 = off, the official pre-training default).
        val_videos: pool videos held out for the validation loss and the examples.
        examples: held-out videos whose title is generated for the report.
        eval_batch_size: items per batch at evaluation.
        seed: the held-out split and the item randomness.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    model: MPLUGVideoConfig = field(default_factory=lambda: MPLUGVideoConfig(lm_path="checkpoints/text_lm"))
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=lambda: recipe_train(warmup_steps=50, epochs=8, batch_size=32))
    contrastive_weight: float = 1.0
    val_videos: int = 200
    examples: int = 8
    eval_batch_size: int = 32
    seed: int = 0
    nproc: int = 1


CONFIG = PretrainMPLUGVideoConfig


def sequence_nll(token_logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed negative log-likelihood over label tokens, and the number of those tokens.

    Args:
        token_logits: (B, L, V) from `MPLUGVideoOutput`.
        labels: (B, L), IGNORE_INDEX where no loss is taken.

    Returns:
        (B,) summed NLL and (B,) token counts.
    """
    nll = F.cross_entropy(token_logits.transpose(1, 2).float(), labels, ignore_index=IGNORE_INDEX,
                          reduction="none")  # (B, L)
    return nll.sum(dim=1), (labels != IGNORE_INDEX).sum(dim=1)


def split_pool(pool: pd.DataFrame, val_videos: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) parts of the pool, the held-out part drawn with the seed."""
    if not 0 < val_videos < len(pool):
        raise ValueError(f"val_videos must be in (0, {len(pool)}), got {val_videos}")
    held = np.random.default_rng(seed).permutation(len(pool))[:val_videos]
    mask = np.zeros(len(pool), bool)
    mask[held] = True
    return pool[~mask].reset_index(drop=True), pool[mask].reset_index(drop=True)


def caption_loss(model: MPLUGVideoModel, video: torch.Tensor | None, texts: list[str]) -> dict[str, torch.Tensor]:
    """LM loss of `texts` after the video prefix and an empty prompt (pre-training, captioning).

    `video` is None when every video of the batch was unreadable: the step then has a zero loss.
    """
    if video is None:
        return zero_loss(model)
    tokens = model.tokenize([""] * len(texts), list(texts))
    return {"loss": model(video, tokens.input_ids, tokens.attention_mask, tokens.labels).loss}


def validation_loss(model: MPLUGVideoModel, dataset, batch_size: int, texts_key: str) -> float:
    """Token-mean LM loss over a held-out dataset, summed over every process."""

    def fn(m, batch):
        tokens = m.tokenize([""] * len(batch[texts_key]), batch[texts_key])
        out = m(batch["video"], tokens.input_ids, tokens.attention_mask)
        nll, count = sequence_nll(out.token_logits, tokens.labels)
        return {"nll": nll, "count": count}

    table = predict(model, dataset, batch_size, fn, desc="validation")
    totals = torch.zeros(2)
    if table is not None:
        totals = torch.tensor([float(table["nll"].sum()), float(table["count"].sum())])
    totals = all_reduce_sum(totals)  # rank 0 holds the sums; the others add zeros
    return float(totals[0] / totals[1])


def run(config: PretrainMPLUGVideoConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    train_records, val_records = split_pool(load_split(paths.data, "pretrain", "pool"), config.val_videos,
                                            config.seed)
    # the contrastive head only when its loss is on: every trainable parameter then gets a gradient (DDP)
    model_class = MPLUGVideoForContrastive if config.contrastive_weight else MPLUGVideoModel
    model = model_class(config.model).train()
    encoder = config.model.video
    with timer("decode"):
        train_set = video_dataset(train_records, encoder, config.decode, "train", config.seed, paths.cache,
                                  ("title",))
        val_set = video_dataset(val_records, encoder, config.decode, "eval", config.seed, paths.cache, ("title",))

    def eval_fn(m, step):
        return {"val_loss": validation_loss(m, val_set, config.eval_batch_size, "title")}

    def loss_fn(m, batch):
        if not config.contrastive_weight:
            return caption_loss(m, batch["video"], batch["title"])
        if batch["video"] is None:
            return zero_loss(m, "lm_loss", "contrastive_loss")
        lm_loss = caption_loss(m, batch["video"], batch["title"])["loss"]
        contrastive = m.contrastive_loss(batch["video"], list(batch["title"]))
        return {"loss": lm_loss + config.contrastive_weight * contrastive, "lm_loss": lm_loss,
                "contrastive_loss": contrastive}

    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn,
                          Path(paths.work), eval_fn=eval_fn).fit()

    with timer("evaluate"):
        examples = val_records.head(config.examples)
        example_set = video_dataset(examples, encoder, config.decode, "eval", config.seed, paths.cache, ("title",))
        generated = predict(model, example_set, config.examples,
                            lambda m, b: {"generated": m.generate(b["video"], [""] * len(b["title"]))},
                            desc="examples")
    if not is_main_process():
        return None
    out = Path(paths.out)
    with timer("write"):
        shutil.copytree(summary.final_dir, out / "model", dirs_exist_ok=True)  # the trainer's export (FSDP: gathered)
        publish_log(summary.log_path, out / "train_log.jsonl")
        io.write_table(out / "examples.csv", generated.assign(title=examples["title"].values)[
            ["video_id", "title", "generated"]])
    return TaskResult(
        metrics={"val_loss": summary.metrics["val_loss"]},
        protocol={"split": "held-out pool videos", "val_videos": len(val_records), "train_videos": len(train_records),
                  "frames": encoder.num_frames, "sampler": "rand (train), middle (eval)",
                  "objective": "title generation (LM loss on answer + EOS)"
                               + (f" + {config.contrastive_weight} x contrastive" if config.contrastive_weight else "")},
        training=training_record(summary, model, trainable_ratio=model.trainable_ratio),
        timings=timer.seconds)

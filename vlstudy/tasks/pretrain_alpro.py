"""Pre-training of the ALPRO-style baseline on the pre-training pool: video-text contrast + matching.

Youku-mPLUG releases ALPRO pre-trained on Youku-mPLUG as its encoder baseline. ALPRO's objectives here are VTC
(InfoNCE over CLS features, learnable temperature clamped to [0.001, 0.5]) and VTM with one hard negative each way
(`vlstudy.models.alpro`); ALPRO's prompting entity modelling needs an image-text prompter and is left out. The
text encoder uses the text-LM stage's character tokenizer. The hard negatives are drawn from a generator seeded by
the batch's item indices, so resumed and distributed runs draw the same ones. Held-out pool videos give a
validation video↔title retrieval score.

Outputs in ``paths.out``: ``model/`` (``save_pretrained``, with the tokenizer) and ``train_log.jsonl``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.models.alpro import ALPROConfig, ALPROForPretraining
from vlstudy.models.text_lm import load_tokenizer
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    load_split,
    model_train_config,
    predict,
    seeded_generator,
    training_record,
    video_dataset,
    zero_loss,
)
from vlstudy.tasks.pretrain_video import split_pool
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CONFIG", "PretrainALPROConfig", "alpro_features", "run"]


@dataclass
class PretrainALPROConfig:
    """Attributes:
        model: ALPRO's size.
        tokenizer_path: folder of the character tokenizer (the text-LM stage's output).
        decode: frame decoding and caching.
        train: optimisation.
        val_videos: pool videos held out for validation retrieval.
        eval_batch_size: items per batch at evaluation.
        seed: the held-out split, item randomness and hard negatives.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    model: ALPROConfig = field(default_factory=ALPROConfig)
    tokenizer_path: str = "checkpoints/text_lm"
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=100, epochs=5))
    val_videos: int = 200
    eval_batch_size: int = 32
    seed: int = 0
    nproc: int = 1


CONFIG = PretrainALPROConfig


def alpro_features(model: ALPROForPretraining, dataset, batch_size: int, texts_key: str):
    """(videos, texts) L2-normalised VTC features of an eval dataset as numpy arrays on rank 0 (else None)."""

    def fn(m, batch):
        ids, mask = m.tokenize(list(batch[texts_key]))
        video_feat, text_feat = m.features(batch["video"], ids, mask)
        return {"video_feat": video_feat, "text_feat": text_feat}

    table = predict(model, dataset, batch_size, fn, desc="features")
    if table is None:
        return None
    return np.stack(table["video_feat"]), np.stack(table["text_feat"])


def run(config: PretrainALPROConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    train_records, val_records = split_pool(load_split(paths.data, "pretrain", "pool"), config.val_videos,
                                            config.seed)
    model = ALPROForPretraining(config.model, load_tokenizer(config.tokenizer_path)).train()
    encoder = config.model.video
    with timer("decode"):
        train_set = video_dataset(train_records, encoder, config.decode, "train", config.seed, paths.cache,
                                  ("title",))
        val_set = video_dataset(val_records, encoder, config.decode, "eval", config.seed, paths.cache, ("title",))

    def loss_fn(m, batch):
        if batch["video"] is None:
            return zero_loss(m, "vtc", "vtm")
        ids, mask = m.tokenize(list(batch["title"]))
        return m.pretrain_losses(batch["video"], ids, mask, seeded_generator(batch["index"], config.seed))

    def eval_fn(m, step):
        features = alpro_features(m, val_set, config.eval_batch_size, "title")
        if features is None:
            return {}
        videos, texts = features
        result = retrieval_metrics(texts @ videos.T, np.arange(len(videos)))
        return {k: result.summary[k] for k in ("t2v_R@1", "t2v_R@5", "v2t_R@1", "v2t_R@5")}

    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn,
                          Path(paths.work), eval_fn=eval_fn).fit()
    if not is_main_process():
        return None
    out = Path(paths.out)
    with timer("write"):
        shutil.copytree(summary.final_dir, out / "model", dirs_exist_ok=True)  # the trainer's export (FSDP: gathered)
        shutil.copy(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics={f"val_{k}": v for k, v in summary.metrics.items()},
        protocol={"split": "held-out pool videos (video-title retrieval)", "val_videos": len(val_records),
                  "train_videos": len(train_records), "frames": encoder.num_frames, "retrieval": "contrastive"},
        training=training_record(summary, model),
        timings=timer.seconds)

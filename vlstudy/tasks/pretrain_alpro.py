"""Pre-training of the ALPRO-style baseline on the pre-training pool: MLM + video-text contrast + matching.

Youku-mPLUG releases ALPRO pre-trained on Youku-mPLUG as its encoder baseline. ALPRO's objectives here are those of
the official Chinese ALPRO (``ALPRO_Pretrain``, X-PLUG/Youku-mPLUG ``models/alpro.py``): MLM on the fused text, VTC
(InfoNCE over CLS features, learnable temperature clamped to [0.001, 0.5]) and VTM with one hard negative each way
(`vlstudy.models.alpro`), summed; ALPRO's prompting entity modelling needs an image-text prompter and is left out.
The text encoder uses the text-LM stage's character tokenizer. The hard negatives and the MLM masking are drawn
from a generator seeded by the batch's item indices, so resumed and distributed runs draw the same ones.

Held-out pool videos measure what pre-training learned: video↔title retrieval by VTC features, and VTM on the
held-out pairs (each held-out title with its video and with one hard-negative video, each video with one
hard-negative title, drawn within evaluation batches as in training): the loss and the accuracy of the matching
head. A head that learned nothing predicts the label prior, 1 match : 2 non-matches, whose cross-entropy is
H(1/3) = 0.637 (`VTM_PRIOR_LOSS`) at 66.7 % accuracy.

Outputs in ``paths.out``: ``model/`` (``save_pretrained``, with the tokenizer) and ``train_log.jsonl``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.models.alpro import OBJECTIVES, ALPROConfig, ALPROForPretraining
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
from vlstudy.tasks.pretrain_mplug_video import split_pool
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CONFIG", "PretrainALPROConfig", "VTM_PRIOR_LOSS", "heldout_scores", "matching_metrics",
           "run"]

VTM_PRIOR_LOSS = float(-(np.log(1 / 3) / 3 + 2 * np.log(2 / 3) / 3))  # 0.637: cross-entropy of the 1:2 label prior


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
    train: TrainConfig = field(default_factory=lambda: recipe_train(warmup_steps=50, epochs=8, batch_size=32))
    val_videos: int = 200
    eval_batch_size: int = 32
    seed: int = 0
    nproc: int = 1


CONFIG = PretrainALPROConfig


def heldout_scores(model: ALPROForPretraining, dataset, batch_size: int, texts_key: str, seed: int):
    """Per held-out pair: VTC features and the ITM logits of the pair and of its two hard negatives.

    Returns:
        On rank 0 (else None): video features (N, E), text features (N, E) and ITM logits (N, 3, 2) of (the pair,
        its text with a hard-negative video, its video with a hard-negative text), negatives drawn within each
        evaluation batch from a generator seeded by the batch (`seeded_generator`). A batch of one pair has no
        negative: its logits are NaN.
    """

    def fn(m, batch):
        ids, mask = m.tokenize(list(batch[texts_key]))
        video_embeds, text_embeds = m.encode_video(batch["video"]), m.encode_text(ids, mask)  # (B, 1+N, D), (B, L, D)
        video_feat = m.contrastive.project_video(video_embeds[:, 0])  # (B, E)
        text_feat = m.contrastive.project_text(text_embeds[:, 0])  # (B, E)
        size = len(ids)
        logits = torch.full((size, 3, 2), float("nan"))
        if size > 1:
            similarity = video_feat @ text_feat.T / m.contrastive.temp  # (B, B)
            pairs, _ = m.matching_logits(video_embeds, text_embeds, mask, similarity,
                                         seeded_generator(batch["index"], seed))  # (3B, 2)
            logits = pairs.float().view(3, size, 2).transpose(0, 1)  # (B, 3, 2)
        return {"video_feat": video_feat, "text_feat": text_feat, "vtm_logits": logits}

    table = predict(model, dataset, batch_size, fn, desc="held-out")
    if table is None:
        return None
    return np.stack(table["video_feat"]), np.stack(table["text_feat"]), np.stack(table["vtm_logits"])


def matching_metrics(logits: np.ndarray) -> dict[str, float]:
    """VTM loss and accuracy on held-out pairs.

    Args:
        logits: (N, 3, 2) ITM logits (no match, match) of each pair and its two hard negatives (rows with NaN, a
            pair without negatives, are left out).

    Returns:
        ``vtm_loss`` (cross-entropy over the 3N pairs, as the training loss; `VTM_PRIOR_LOSS` when nothing is
        learned), ``vtm_accuracy`` (share of the 3N pairs classified right, 66.7 % by always answering "no"),
        ``vtm_accuracy_positive`` and ``vtm_accuracy_negative`` (on the N matches and the 2N non-matches).
    """
    logits = logits[~np.isnan(logits).any(axis=(1, 2))]
    if not len(logits):
        raise ValueError("no held-out pair has hard negatives (every evaluation batch held one pair)")
    labels = np.broadcast_to(np.array([1, 0, 0]), logits.shape[:2])  # (N, 3)
    log_prob = logits - np.logaddexp(logits[..., :1], logits[..., 1:])  # (N, 3, 2) log-softmax
    loss = -np.take_along_axis(log_prob, labels[..., None], axis=2).mean()
    right = logits.argmax(axis=2) == labels  # (N, 3)
    return {"vtm_loss": float(loss), "vtm_accuracy": 100 * float(right.mean()),
            "vtm_accuracy_positive": 100 * float(right[:, 0].mean()),
            "vtm_accuracy_negative": 100 * float(right[:, 1:].mean())}


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
            return zero_loss(m, *OBJECTIVES)
        ids, mask = m.tokenize(list(batch["title"]))
        return m.pretrain_losses(batch["video"], ids, mask, seeded_generator(batch["index"], config.seed))

    def eval_fn(m, step):
        scores = heldout_scores(m, val_set, config.eval_batch_size, "title", config.seed)
        if scores is None:
            return {}
        videos, texts, logits = scores
        result = retrieval_metrics(texts @ videos.T, np.arange(len(videos)))
        return {**{k: result.summary[k] for k in ("t2v_R@1", "t2v_R@5", "v2t_R@1", "v2t_R@5")},
                **matching_metrics(logits)}

    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn,
                          Path(paths.work), eval_fn=eval_fn).fit()
    if not is_main_process():
        return None
    out = Path(paths.out)
    with timer("write"):
        shutil.copytree(summary.final_dir, out / "model", dirs_exist_ok=True)  # the trainer's export (FSDP: gathered)
        publish_log(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics={f"val_{k}": v for k, v in summary.metrics.items()},
        protocol={"split": "held-out pool videos (video-title retrieval; VTM on each pair and its two hard "
                           "negatives, drawn within evaluation batches)", "val_videos": len(val_records),
                  "train_videos": len(train_records), "frames": encoder.num_frames, "retrieval": "contrastive",
                  "objectives": list(OBJECTIVES), "vtm_prior_loss": VTM_PRIOR_LOSS},
        training=training_record(summary, model),
        timings=timer.seconds)

"""Pre-training of the mPLUG-2-style baseline on the pre-training pool: contrast, matching and title generation.

Youku-mPLUG releases mPLUG-2 pre-trained on Youku-mPLUG beside ALPRO (Sec. 5.2). mPLUG-2's objectives here are VTC
(InfoNCE over the CLS features after the universal layers), VTM with one hard negative each way, and the
captioning LM loss of the title through the text decoder (`vlstudy.models.mplug2`), summed with equal weights as
in the official code; mPLUG-2's MLM is left out. One pass of each video through the encoder and the universal
layers serves all three losses. The text side uses the text-LM stage's character tokenizer. Hard negatives are
drawn from a generator seeded by the batch's item indices (resumed and distributed runs draw the same ones).
Held-out pool videos give a validation video↔title retrieval score and a few generated titles.

Outputs in ``paths.out``: ``model/`` (``save_pretrained``, with the tokenizer), ``train_log.jsonl`` and
``examples.csv`` (video, reference title, generated title).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.models.configuration_mplug2 import MPLUG2Config
from vlstudy.models.mplug2 import MPLUG2ForPretraining
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
    video_dataset,
    zero_loss,
)
from vlstudy.tasks.pretrain_mplug_video import split_pool
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CONFIG", "PretrainMPLUG2Config", "run"]


@dataclass
class PretrainMPLUG2Config:
    """Attributes:
        model: mPLUG-2's size.
        tokenizer_path: folder of the character tokenizer (the text-LM stage's output).
        decode: frame decoding and caching.
        train: optimisation.
        val_videos: pool videos held out for validation retrieval.
        examples: held-out videos whose title is generated (greedy) for the report.
        max_new_tokens: longest generated title, in tokens (characters).
        eval_batch_size: items per batch at evaluation.
        seed: the held-out split, item randomness and hard negatives.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    model: MPLUG2Config = field(default_factory=MPLUG2Config)
    tokenizer_path: str = "checkpoints/text_lm"
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=lambda: recipe_train(warmup_steps=20, epochs=2, batch_size=32))
    val_videos: int = 200
    examples: int = 8
    max_new_tokens: int = 30
    eval_batch_size: int = 32
    seed: int = 0
    nproc: int = 1

    def __post_init__(self) -> None:
        check_positive(self, "val_videos", "examples", "max_new_tokens", "eval_batch_size", "nproc")


CONFIG = PretrainMPLUG2Config


def run(config: PretrainMPLUG2Config, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    train_records, val_records = split_pool(load_split(paths.data, "pretrain", "pool"), config.val_videos,
                                            config.seed)
    model = MPLUG2ForPretraining(config.model, load_tokenizer(config.tokenizer_path)).train()
    encoder = config.model.video
    with timer("decode"):
        train_set = video_dataset(train_records, encoder, config.decode, "train", config.seed, paths.cache,
                                  ("title",))
        val_set = video_dataset(val_records, encoder, config.decode, "eval", config.seed, paths.cache, ("title",))

    def loss_fn(m, batch):
        if batch["video"] is None:
            return zero_loss(m, "vtc", "vtm", "lm")
        return m.pretrain_losses(batch["video"], list(batch["title"]), seeded_generator(batch["index"], config.seed))

    def eval_fn(m, step):
        def fn(m, batch):
            video_feat, text_feat = m.features(batch["video"], *m.tokenize(list(batch["title"])))  # (B, E) each
            return {"video_feat": video_feat, "text_feat": text_feat}

        table = predict(m, val_set, config.eval_batch_size, fn, desc="features")
        if table is None:
            return {}
        videos, texts = np.stack(table["video_feat"]), np.stack(table["text_feat"])  # (N, E) each
        result = retrieval_metrics(texts @ videos.T, np.arange(len(videos)))
        return {k: result.summary[k] for k in ("t2v_R@1", "t2v_R@5", "v2t_R@1", "v2t_R@5")}

    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn,
                          Path(paths.work), eval_fn=eval_fn).fit()
    with timer("evaluate"):
        examples = val_records.head(config.examples)
        example_set = video_dataset(examples, encoder, config.decode, "eval", config.seed, paths.cache, ("title",))
        generated = predict(model, example_set, config.eval_batch_size, lambda m, b: {
            "generated": m.generate(b["video"], max_new_tokens=config.max_new_tokens)}, desc="examples")
    if not is_main_process():
        return None
    out = Path(paths.out)
    with timer("write"):
        model.save_pretrained(out / "model")
        publish_log(summary.log_path, out / "train_log.jsonl")
        io.write_table(out / "examples.csv", generated.assign(title=examples["title"].values)[
            ["video_id", "title", "generated"]])
    return TaskResult(
        metrics={f"val_{k}": v for k, v in summary.metrics.items()},
        protocol={"split": "held-out pool videos (video-title retrieval)", "val_videos": len(val_records),
                  "train_videos": len(train_records), "frames": encoder.num_frames, "retrieval": "contrastive",
                  "objective": "VTC + VTM (hard negatives) + title LM through the text decoder, equal weights",
                  "examples": "greedy decoding"},
        training={**summary.losses, "parameters": sum(p.numel() for p in model.parameters()),
                  "steps": summary.final_step, "samples_per_s": summary.samples_per_s,
                  "skipped_videos": summary.skipped_videos},
        timings=timer.seconds)

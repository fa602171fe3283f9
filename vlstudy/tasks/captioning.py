"""Video captioning (Youku-mPLUG Table 5).

Protocol (official ``caption_gpt3_*_youku_v0``; shared/DESIGN.md): 16 frames; fine-tune mPLUG-video with lr 2e-5
and 100 warmup steps on ``[BOS] caption [EOS]`` after the video prefix and an empty prompt; decode with beam search
(5 beams, length penalty 1); score against every reference after the official normalisation (non-CJK characters
deleted, characters space-separated) with pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr, keeping each
item's scores for the bootstrap intervals. (The official script decodes greedily; the paper and DESIGN.md say
beam 5, which is the default here; ``num_beams`` switches.)

Outputs in ``paths.out``: ``model/``, ``predictions_val.csv`` (video, prediction, references),
``per_item.csv`` (every metric per item), ``predictions_test.csv``, ``train_log.jsonl`` and ``result.json``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vlstudy.data.datasets import collate_videos
from vlstudy.distributed import is_main_process
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import (
    TaskPaths,
    VideoInputConfig,
    interval_summary,
    load_model,
    load_split,
    model_train_config,
    predict,
    video_dataset,
    write_json,
)
from vlstudy.tasks.pretrain_video import caption_loss
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["CaptioningConfig", "CONFIG", "run"]


@dataclass
class CaptioningConfig:
    """Attributes:
        init: the pre-trained mPLUG-video folder.
        pretrained: load its weights (False: the same architecture from scratch).
        num_frames: frames per clip (official: 16).
        video: frame caching.
        train: optimisation (official: lr 2e-5, 100 warmup steps).
        num_beams: beam width at decoding (5; 1 = greedy).
        length_penalty: beam-score length exponent (1.0).
        max_new_tokens: longest caption in tokens (characters).
        eval_batch_size: items per batch at decoding.
        predict_test: also caption the test split (a submission file).
        n_boot: bootstrap resamples for the intervals.
        seed: item randomness and the bootstrap.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    init: str = "checkpoints/pretrain_video/model"
    pretrained: bool = True
    num_frames: int = 16
    video: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-5, warmup_steps=100, epochs=10))
    num_beams: int = 5
    length_penalty: float = 1.0
    max_new_tokens: int = 48
    eval_batch_size: int = 16
    predict_test: bool = True
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1


CONFIG = CaptioningConfig


def with_captions(records: pd.DataFrame, name: str) -> pd.DataFrame:
    """`records`, checked to have at least one caption each (a training item's first caption is its target)."""
    empty = records["captions"].map(len) == 0
    if empty.any():
        raise ValueError(f"{name}: {int(empty.sum())} items have no caption, e.g. "
                         f"{records.loc[empty, 'video_id'].iloc[0]}")
    return records


def first_captions(batch: dict) -> list[str]:
    """The training target of each item of a batch: its first caption."""
    return [captions[0] for captions in batch["captions"]]


def run(config: CaptioningConfig, paths: TaskPaths) -> None:
    model = load_model(MPLUGVideoModel, config.init, config.pretrained, config.num_frames)
    encoder = model.config.video
    train_records = with_captions(load_split(paths.data, "captioning", "train"), "captioning train")
    train_set = video_dataset(train_records, encoder, config.video, "train", config.seed, paths.cache,
                              ("captions",))
    summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos,
                      lambda m, b: caption_loss(m, b["video"], first_captions(b)), Path(paths.work)).fit()

    def decode(m, batch):
        return {"prediction": m.generate(batch["video"], [""] * len(batch["video_id"]), num_beams=config.num_beams,
                                         length_penalty=config.length_penalty,
                                         max_new_tokens=config.max_new_tokens)}

    splits = ("val", "test") if config.predict_test else ("val",)
    decoded = {}
    for split in splits:
        records = load_split(paths.data, "captioning", split)
        dataset = video_dataset(records, encoder, config.video, "eval", config.seed, paths.cache)
        decoded[split] = (records, predict(model, dataset, config.eval_batch_size, decode, desc=f"decode {split}"))
    if not is_main_process():
        return

    out = Path(paths.out)
    records, val = decoded["val"]
    references = dict(zip(records["video_id"], records["captions"].map(list)))
    metrics = caption_metrics(dict(zip(val["video_id"], val["prediction"])), references)
    val.assign(references=[json.dumps(references[v], ensure_ascii=False) for v in val["video_id"]])[
        ["video_id", "prediction", "references"]].to_csv(out / "predictions_val.csv", index=False)
    metrics.per_item.to_csv(out / "per_item.csv", index=False)
    if "test" in decoded:
        test = decoded["test"][1]
        pd.DataFrame({"video_id:FILE": test["video_id"], "caption": test["prediction"]}).to_csv(
            out / "predictions_test.csv", index=False)
    model.save_pretrained(out / "model")
    shutil.copy(summary.log_path, out / "train_log.jsonl")
    write_json(out / "result.json", {
        "metrics": interval_summary(metrics, config.seed, config.n_boot), "steps": summary.final_step,
        "seconds": summary.seconds, "train_loss": summary.losses.get("loss"),
        "skipped_videos": summary.skipped_videos, "num_beams": config.num_beams,
    })

"""Video captioning (Youku-mPLUG Table 4, captioning columns), for each generative model of the kit.

Protocol (official ``caption_gpt3_*_youku_v0``; shared/DESIGN.md): 16 frames; fine-tune with lr 2e-5 and 100
warmup steps on ``[BOS] caption [EOS]``: mPLUG-video after the video prefix and an empty prompt (its frozen LM),
mPLUG-2 through its text decoder reading the video tokens (`vlstudy.models.mplug2`); decode with beam search
(5 beams, length penalty 1); score against every reference after the official normalisation (non-CJK characters
deleted, characters space-separated) with pycocoevalcap's BLEU-1..4, METEOR, ROUGE-L and CIDEr, keeping each
item's scores for the bootstrap intervals. (The official script decodes greedily; the paper and DESIGN.md say
beam 5, which is the default here; ``num_beams`` switches.)

Outputs in ``paths.out``: ``model/``, ``predictions_val.csv`` (video, prediction, references),
``per_item.csv`` (every metric per item), ``predictions_test.csv`` and ``train_log.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, get_args, get_type_hints

import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.data.prepared import has_split
from vlstudy.distributed import is_main_process
from vlstudy.metrics.bootstrap import check_n_boot
from vlstudy.metrics.captioning import caption_metrics
from vlstudy.models.mplug2 import MPLUG2ForCaptioning
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    interval_summary,
    load_model,
    load_split,
    model_train_config,
    predict,
    training_record,
    video_dataset,
    zero_loss,
)
from vlstudy.tasks.pretrain_mplug_video import caption_loss
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = [
    "CONFIG",
    "MODEL_CLASSES",
    "CaptioningConfig",
    "FinetuneCaptioningParams",
    "captioning_loss",
    "generate_captions",
    "run",
]


@dataclass
class CaptioningConfig:
    """Attributes:
        model: which model: ``mplug_video`` or ``mplug2``.
        init: the pre-trained model folder (its ``config.json`` fixes the architecture).
        pretrained: load its weights (False: the same architecture from scratch).
        num_frames: frames per clip (official: 16).
        decode: frame decoding and caching.
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

    model: Literal["mplug_video", "mplug2"] = "mplug_video"
    init: str = "checkpoints/pretrain_mplug_video/model"
    pretrained: bool = True
    num_frames: int = 16
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=recipe_train)
    num_beams: int = 5
    length_penalty: float = 1.0
    max_new_tokens: int = 48
    eval_batch_size: int = 16
    predict_test: bool = True
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_n_boot(self.n_boot)  # refuse a "95 %" interval from too few resamples before anything trains
        check_positive(self, "num_frames", "num_beams", "max_new_tokens", "eval_batch_size", "nproc")


CONFIG = CaptioningConfig

# The model class each `CaptioningConfig.model` value fine-tunes.
MODEL_CLASSES = {"mplug_video": MPLUGVideoModel, "mplug2": MPLUG2ForCaptioning}


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


def captioning_loss(model: MPLUGVideoModel | MPLUG2ForCaptioning, video: torch.Tensor | None,
                    captions: list[str]) -> dict[str, torch.Tensor]:
    """The LM loss of `captions` given their videos, for either model (zero when the whole batch was skipped)."""
    if isinstance(model, MPLUGVideoModel):
        return caption_loss(model, video, captions)
    return zero_loss(model) if video is None else model.caption_loss(video, captions)


def generate_captions(model: MPLUGVideoModel | MPLUG2ForCaptioning, video: torch.Tensor,
                      config: CaptioningConfig) -> list[str]:
    """One caption per clip of `video` (B, T, C, H, W), decoded as `config` says (mPLUG-video: empty prompt)."""
    options = {"num_beams": config.num_beams, "length_penalty": config.length_penalty,
               "max_new_tokens": config.max_new_tokens}
    if isinstance(model, MPLUGVideoModel):
        return model.generate(video, [""] * video.shape[0], **options)
    return model.generate(video, **options)


def run(config: CaptioningConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    model = load_model(MODEL_CLASSES[config.model], config.init, config.pretrained, config.num_frames)
    encoder = model.config.video
    train_records = with_captions(load_split(paths.data, "captioning", "train"), "captioning train")
    with timer("decode"):
        train_set = video_dataset(train_records, encoder, config.decode, "train", config.seed, paths.cache,
                                  ("captions",))
    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos,
                          lambda m, b: captioning_loss(m, b["video"], first_captions(b)), Path(paths.work)).fit()

    def decode(m, batch):
        return {"prediction": generate_captions(m, batch["video"], config)}

    with_test = config.predict_test and has_split(paths.data, "captioning", "test")  # a release may hold no test
    splits = ("val", "test") if with_test else ("val",)
    decoded = {}
    for split in splits:
        records = load_split(paths.data, "captioning", split)
        with timer("decode"):
            dataset = video_dataset(records, encoder, config.decode, "eval", config.seed, paths.cache)
        with timer("evaluate"):
            decoded[split] = (records, predict(model, dataset, config.eval_batch_size, decode,
                                               desc=f"decode {split}"))
    if not is_main_process():
        return None

    out = Path(paths.out)
    records, val = decoded["val"]
    references = dict(zip(records["video_id"], records["captions"].map(list)))
    with timer("evaluate"):
        metrics = caption_metrics(dict(zip(val["video_id"], val["prediction"])), references)
    with timer("write"):
        io.write_table(out / "predictions_val.csv", val.assign(
            references=[json.dumps(references[v], ensure_ascii=False) for v in val["video_id"]])[
            ["video_id", "prediction", "references"]])
        io.write_table(out / "per_item.csv", metrics.per_item)
        if "test" in decoded:
            test = decoded["test"][1]
            io.write_table(out / "predictions_test.csv",
                           pd.DataFrame({"video_id:FILE": test["video_id"], "caption": test["prediction"]}))
        shutil.copytree(summary.final_dir, out / "model", dirs_exist_ok=True)  # the trainer's export (FSDP: gathered)
        publish_log(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics=interval_summary(metrics, config.seed, config.n_boot),
        protocol={"split": "val", "model": config.model, "videos": len(records), "references": int(records["captions"].map(len).sum()),
                  "frames": encoder.num_frames, "sampler": "middle", "decoding": f"beam {config.num_beams}, "
                  f"length penalty {config.length_penalty}", "normalisation": "non-CJK deleted, one token per "
                  "character", "interval": f"95% bootstrap over videos ({config.n_boot})"},
        training=training_record(summary, model),
        timings=timer.seconds)


def _default_models() -> dict[str, CaptioningConfig]:
    return {"mplug_video": CaptioningConfig(), "mplug2": CaptioningConfig(
        init="checkpoints/pretrain_mplug2/model", train=recipe_train())}


@dataclass
class FinetuneCaptioningParams:
    """``finetune_captioning`` (Table 4, captioning columns): a DVC matrix, one fine-tuning run per model.

    Attributes:
        model: the cell a run trains (the DVC matrix sets it; a key of `models`).
        models: each model's run; the key names the model.
    """

    MATRIX: ClassVar[tuple[str, ...]] = ("model",)

    model: str = "mplug_video"
    models: dict[str, CaptioningConfig] = field(default_factory=_default_models)

    def __post_init__(self) -> None:
        kinds = get_args(get_type_hints(CaptioningConfig)["model"])
        for name in self.models:
            if name not in kinds:
                raise ValueError(f"models.{name}: not a model this task trains ({', '.join(kinds)})")
        if self.model not in self.models:
            raise ValueError(f"model {self.model!r} is not one of {', '.join(self.models)}")
        self.models = {name: dataclasses.replace(config, model=name) for name, config in self.models.items()}

    def cell(self) -> CaptioningConfig:
        """The run of the cell `model`."""
        return self.models[self.model]

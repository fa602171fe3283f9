"""Video category classification (Youku-mPLUG Table 4) and its modality ablation (Table 6).

Protocol (official ``run_cls_distributed_gpt3.py``; shared/DESIGN.md): 8 frames; fine-tuning with AdamW, lr 2e-5,
100 warmup steps. mPLUG-video ranks all 45 class names by the un-normalised sum of their log-likelihood after
``视频标题：{title} 视频类目：`` (softmax over the 45 gives top-1/top-5) and reports an MLP head beside it; its
training loss is the generation loss of the true class name plus the head's cross-entropy. The ALPRO-style and
mPLUG-2-style baselines have a classification head on their fused CLS. Reported on val (the test split has no released labels);
test predictions are written as a submission file.

Modalities (the ablation): ``vision_language`` reads video and title; ``vision`` formats the prompt with an empty
title; ``language`` gives no video (mPLUG-video keeps its learned queries as a soft prompt; ALPRO and mPLUG-2 read
their text CLS). ``pretrained=False`` keeps the architecture of ``init`` but not its weights: the video side starts from
scratch (the LM of mPLUG-video stays the text-LM stage's, as it is frozen in every variant).

Outputs in ``paths.out``: ``predictions_val.parquet`` (per item: label and both score sets), ``per_item.csv``,
``predictions_test.csv`` (submission: video_id and predicted class name) and ``train_log.jsonl``; the returned
result holds each score set's top-1/top-5 with 95% bootstrap intervals over val videos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, get_args, get_type_hints

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.datasets import collate_videos
from vlstudy.data.prepared import has_split
from vlstudy.distributed import is_main_process
from vlstudy.metrics.bootstrap import check_n_boot
from vlstudy.metrics.classification import classification_metrics
from vlstudy.models.alpro import ALPROForClassification
from vlstudy.models.mplug2 import MPLUG2ForClassification
from vlstudy.models.mplug_video import MPLUGVideoForClassification, classification_prompt
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
from vlstudy.train.config import recipe_train
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["ClassificationConfig", "CONFIG", "run", "MODEL_CLASSES", "Modality", "load_predictions", "model_inputs",
           "score_fn", "VariantConfig", "FinetuneClassificationParams"]

Modality = Literal["vision_language", "vision", "language"]


@dataclass
class ClassificationConfig:
    """Attributes:
        model: which model: ``mplug_video``, ``alpro`` or ``mplug2``.
        init: a pre-trained model folder (its ``config.json`` fixes the architecture).
        pretrained: load the weights of `init` (False: the same architecture from scratch).
        modality: what the model reads.
        num_frames: frames per clip (official: 8).
        decode: frame decoding and caching.
        train: optimisation (official: lr 2e-5, 100 warmup steps).
        eval_batch_size: items per batch at evaluation.
        predict_test: also write predictions for the test split (a submission file).
        n_boot: bootstrap resamples for the intervals.
        seed: item randomness and the bootstrap.
        nproc: processes the stage launches this task on (torchrun, one per GPU); 1 runs it in the
            notebook's kernel.
    """

    model: Literal["mplug_video", "alpro", "mplug2"] = "mplug_video"
    init: str = "checkpoints/pretrain_mplug_video/model"
    pretrained: bool = True
    modality: Modality = "vision_language"
    num_frames: int = 8
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    train: TrainConfig = field(default_factory=recipe_train)
    eval_batch_size: int = 16
    predict_test: bool = True
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self):
        check_n_boot(self.n_boot)  # refuse a "95 %" interval from too few resamples before anything trains
        check_positive(self, "num_frames", "eval_batch_size", "nproc")


CONFIG = ClassificationConfig


# The model class each `ClassificationConfig.model` value fine-tunes.
MODEL_CLASSES = {"mplug_video": MPLUGVideoForClassification, "alpro": ALPROForClassification,
                 "mplug2": MPLUG2ForClassification}


def model_inputs(modality: Modality, batch: dict) -> tuple[torch.Tensor | None, list[str]]:
    """What the model sees under `modality`: the video (or None) and the titles (or empty ones)."""
    video = None if modality == "language" else batch["video"]
    titles = [""] * len(batch["title"]) if modality == "vision" else list(batch["title"])
    return video, titles


def _head_logits(model: ALPROForClassification | MPLUG2ForClassification, video: torch.Tensor | None,
                 titles: list[str], modality: Modality) -> torch.Tensor:
    """The classification head's logits (B, 45) of an encoder model (ALPRO, mPLUG-2) on what `modality` shows."""
    ids = mask = None
    if modality != "vision":
        ids, mask = model.tokenize(titles)
    return model.classify(video, ids, mask)


def loss_fn(config: ClassificationConfig):
    def mplug(model: MPLUGVideoForClassification, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model, "lm_loss", "cls_loss")
        video, titles = model_inputs(config.modality, batch)
        labels = torch.as_tensor(batch["label"])
        return model.classification_loss(video, [classification_prompt(t) for t in titles], labels)

    def encoder(model: ALPROForClassification | MPLUG2ForClassification, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model)
        video, titles = model_inputs(config.modality, batch)
        logits = _head_logits(model, video, titles, config.modality)
        return {"loss": F.cross_entropy(logits, torch.as_tensor(batch["label"], device=logits.device))}

    return mplug if config.model == "mplug_video" else encoder


def score_fn(config: ClassificationConfig):
    """Per-item class scores: ``generative`` and ``head`` for mPLUG-video, ``head`` for ALPRO and mPLUG-2."""

    def fn(model, batch):
        video, titles = model_inputs(config.modality, batch)
        if config.model == "mplug_video":
            scores = model.classify(video, [classification_prompt(t) for t in titles])
            return {"generative": scores.generative.float(), "head": scores.head.float()}
        return {"head": _head_logits(model, video, titles, config.modality).float()}

    return fn


def load_predictions(out: str | Path) -> dict:
    """``{score set: MetricResult}`` from a run's ``predictions_val.parquet`` (per-item, for paired bootstraps)."""
    path = Path(out) / "predictions_val.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no predictions; run the classification cell first")
    table = pd.read_parquet(path)
    return {s: classification_metrics(np.stack(table[s]), table["label"].to_numpy(), ids=table["video_id"].tolist())
            for s in ("generative", "head") if s in table.columns}


def run(config: ClassificationConfig, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    model = load_model(MODEL_CLASSES[config.model], config.init, config.pretrained, config.num_frames)
    encoder = model.config.video
    fields = ("title", "label")
    val_records = load_split(paths.data, "classification", "val")
    if val_records["label"].isna().any():
        raise ValueError(f"{paths.data}: classification_val has items without labels; it cannot be evaluated")
    with timer("decode"):
        train_set = video_dataset(load_split(paths.data, "classification", "train"), encoder, config.decode,
                                  "train", config.seed, paths.cache, fields)
        val_set = video_dataset(val_records, encoder, config.decode, "eval", config.seed, paths.cache, fields)
    with timer("train"):
        summary = Trainer(model, model_train_config(model, config.train), train_set, collate_videos, loss_fn(config),
                          Path(paths.work)).fit()
    with timer("evaluate"):
        val = predict(model, val_set, config.eval_batch_size, score_fn(config), desc="val")
    test = None
    if config.predict_test and has_split(paths.data, "classification", "test"):  # a release may hold no test CSV
        test_records = load_split(paths.data, "classification", "test")
        with timer("decode"):
            test_set = video_dataset(test_records, encoder, config.decode, "eval", config.seed, paths.cache, fields)
        with timer("evaluate"):
            test = predict(model, test_set, config.eval_batch_size, score_fn(config), desc="test")
    if not is_main_process():
        return None

    out = Path(paths.out)
    labels = val_records["label"].astype(int).to_numpy()
    results, per_item = {}, []
    for score_set in ("generative", "head"):
        if score_set not in val:
            continue
        scores = np.stack(val[score_set])  # (N, 45)
        metrics = classification_metrics(scores, labels, ids=val["video_id"].tolist())
        results[score_set] = interval_summary(metrics, config.seed, config.n_boot)
        per_item.append(metrics.per_item.set_index("item_id").add_prefix(f"{score_set}_"))
    with timer("write"):
        io.write_table(out / "per_item.csv", pd.concat(per_item, axis=1).reset_index().assign(label=labels))
        io.write_table(out / "predictions_val.parquet", val.assign(label=labels))
        if test is not None:
            main = "generative" if "generative" in test else "head"
            predicted = np.stack(test[main]).argmax(axis=1)
            io.write_table(out / "predictions_test.csv", pd.DataFrame(
                {"video_id:FILE": test["video_id"], "label": [CLASS_NAMES[i] for i in predicted]}))
        publish_log(summary.log_path, out / "train_log.jsonl")
    return TaskResult(
        metrics=results,
        protocol={"split": "val", "videos": len(val_records), "frames": config.num_frames,
                  "sampler": "middle", "model": config.model, "modality": config.modality,
                  "pretrained": config.pretrained, "interval": f"95% bootstrap over videos ({config.n_boot})",
                  "score_sets": {"generative": "45 class names ranked by summed log-likelihood after "
                                 "视频标题：{title} 视频类目：", "head": "MLP head"}},
        training=training_record(summary, model),
        timings=timer.seconds)


@dataclass
class VariantConfig:
    """One row of Table 6: what the model reads and where its weights start.

    Attributes:
        modality: ``vision_language``, ``vision`` (the title is emptied) or ``language`` (no video).
        pretrained: start from the pool pre-training (False: the same architecture from scratch).
    """

    modality: Modality = "vision_language"
    pretrained: bool = True


def _default_variants() -> dict[str, VariantConfig]:
    return {"vision": VariantConfig("vision", False), "language": VariantConfig("language", False),
            "vision_language": VariantConfig("vision_language", False),
            "vision_language_pretrained": VariantConfig("vision_language", True)}


def _default_models() -> dict[str, ClassificationConfig]:
    return {"alpro": ClassificationConfig(init="checkpoints/pretrain_alpro/model"),
            "mplug_video": ClassificationConfig(),
            "mplug2": ClassificationConfig(init="checkpoints/pretrain_mplug2/model")}


@dataclass
class FinetuneClassificationParams:
    """``finetune_classification``: a DVC matrix, one fine-tuning run per (model, variant) cell, all else equal.

    The cells give Table 6 (the modality ablation, per model) and, from their ``vision_language_pretrained``
    cells, Table 4's classification rows: every (model, recipe) is trained once.

    Attributes:
        model: the cell a run trains: its model (the DVC matrix sets it; a key of `models`).
        variant: the cell's variant (the DVC matrix sets it; a key of `variants`).
        models: each model's fine-tuning run (its ``modality`` and ``pretrained`` come from the variant).
        variants: Table 6's rows; remove one to drop it from the matrix, the summary and the report.
    """

    MATRIX: ClassVar[tuple[str, ...]] = ("model", "variant")

    model: str = "mplug_video"
    variant: str = "vision_language_pretrained"
    models: dict[str, ClassificationConfig] = field(default_factory=_default_models)
    variants: dict[str, VariantConfig] = field(default_factory=_default_variants)

    def __post_init__(self) -> None:
        for key, known in (("model", self.models), ("variant", self.variants)):
            if getattr(self, key) not in known:
                raise ValueError(f"{key} {getattr(self, key)!r} is not one of {', '.join(known)}")
        kinds = get_args(get_type_hints(ClassificationConfig)["model"])
        for name in self.models:
            if name not in kinds:
                raise ValueError(f"models.{name}: not a model this task trains ({', '.join(kinds)})")
        self.models = {name: dataclasses.replace(config, model=name) for name, config in self.models.items()}

    def cell(self) -> ClassificationConfig:
        """The run of the cell (`model`, `variant`)."""
        variant = self.variants[self.variant]
        return dataclasses.replace(self.models[self.model], modality=variant.modality,
                                   pretrained=variant.pretrained)

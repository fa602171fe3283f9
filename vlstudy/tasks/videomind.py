"""VideoMind mixed-cognition retrieval (Yang et al. 2025, Tables 2 and 3) with the kit's dual encoders, and a
DeME-style multi-layer embedding baseline.

VideoMind describes each video at three layers, factual (what is seen), abstract (what it is about) and intent
(why it was made: ``[主体]通过[动作]旨在[意图]``), and scores embedding models on text → video retrieval per layer
and with all layers' queries pooled (Table 2), and on video → text retrieval with the three texts as ground truths
(Table 3). No official code was released; the metrics are `vlstudy.metrics.videomind` (DESIGN.md, "VideoMind
facts"). This task

* evaluates every dual-encoder retrieval model of the kit **zero-shot from its retrieval fine-tuning**
  (``models``: method → the folder ``finetune_retrieval`` saved): the features its retrieval scores use
  (`vlstudy.tasks.retrieval.text_features` / `video_features`), each layer's texts of the evaluation videos as the
  queries. mPLUG-video's matching method is not a dual encoder (every text-video pair through the LM: 3V² passes)
  and is not evaluated;
* trains the **DeME-style baseline**, VideoMind's multi-layer embedding model: one video encoder trained
  contrastively against all three layers' texts at once (`vlstudy.models.losses.multi_positive_contrastive_loss`).
  It starts from a pre-trained dual encoder of the kit, by default the mplug_contrastive model as
  ``finetune_retrieval`` saved it, and trains one more epoch on the same videos (the retrieval train split) with
  their three layers instead of their caption: the paired DeME − mplug_contrastive difference is what training on
  the layers adds to the same model (plus one epoch). Starting from the pre-trained mPLUG-video instead would need
  the whole retrieval recipe (280 steps, minutes on a laptop CPU) for a like-for-like comparison: `deme.init` and
  `deme.train` allow it;
* measures the **designed ceilings** of mini-Youku (`vlstudy.data.mini_youku.oracle`): what a perfect recogniser
  of the designed cues scores on the evaluation videos, ties among indistinguishable videos broken at random.

Outputs in ``paths.out``: ``videos.csv`` (the evaluation videos, in matrix order), ``similarity_<model>.npz`` (layer
→ (V, V) scores, [i, j] = video i's text of the layer · video j), ``deme/model`` (``save_pretrained``) and
``deme/train_log.jsonl``. :func:`load_results` turns the matrices back into per-video results (for paired
comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from vlstudy import io
from vlstudy.config import check_positive
from vlstudy.data.datasets import collate_videos
from vlstudy.data.mini_youku.oracle import designed_layer_scores
from vlstudy.data.prepared import load_splits, parse_split
from vlstudy.distributed import is_main_process, setup_distributed
from vlstudy.metrics.base import MetricResult
from vlstudy.metrics.bootstrap import check_n_boot
from vlstudy.metrics.videomind import LAYERS, layer_similarities, tie_broken_summary, videomind_metrics
from vlstudy.models.losses import multi_positive_contrastive_loss
from vlstudy.models.mplug_video import MPLUGVideoForContrastive
from vlstudy.tasks.common import (
    PhaseTimer,
    TaskPaths,
    TaskResult,
    VideoInputConfig,
    interval_summary,
    load_model,
    model_train_config,
    predict,
    video_dataset,
    zero_loss,
)
from vlstudy.tasks.retrieval import MODEL_CLASSES, text_features, video_features
from vlstudy.train.logging import publish_log
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = [
    "DEME",
    "DUAL_ENCODERS",
    "RETRIEVAL_TRAIN",
    "DeMEConfig",
    "VideoMindRetrievalParams",
    "candidate_ceilings",
    "deme_loss",
    "designed_ceiling",
    "layer_features",
    "load_results",
    "run",
    "split_records",
]

DEME = "deme"
"""The name of the DeME-style baseline among the evaluated models."""
DUAL_ENCODERS = tuple(m for m in MODEL_CLASSES if m != "mplug_matching")
"""The retrieval methods of the kit that are dual encoders (``mplug_matching`` scores pairs through the LM)."""
RETRIEVAL_TRAIN = ("retrieval", "train")
"""The split ``finetune_retrieval`` trains every evaluated model on: never an evaluation split."""


def split_records(data_dir: str | Path, spec: str) -> pd.DataFrame:
    """The prepared records of `spec` (`vlstudy.data.prepared.parse_split`), each with its three VideoMind layer texts.

    Raises:
        ValueError: a video without one of the layers (naming the split, the layer and the video); real
            Youku-mPLUG data has none, mini-Youku writes all three.
    """
    records = load_splits(data_dir, spec)
    for layer in LAYERS:
        missing = records[layer].isna() | (records[layer].astype(str).str.strip() == "")
        if missing.any():
            raise ValueError(f"{spec}: {int(missing.sum())} of {len(records)} videos have no {layer} text (e.g. "
                             f"{records.loc[missing, 'video_id'].iloc[0]}); VideoMind retrieval needs all three "
                             f"layers ({', '.join(LAYERS)})")
    return records


def layer_features(model, dataset, texts: dict[str, list[str]],
                   batch_size: int) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """A dual encoder's features of the evaluation videos and of each layer's texts (rank 0; None elsewhere).

    Args:
        model: a retrieval dual encoder (see `vlstudy.tasks.retrieval.text_features`).
        dataset: the V evaluation videos (eval mode).
        texts: layer → V texts, text i belonging to video i.
        batch_size: videos or texts per batch.

    Returns:
        (V, E) video features and layer → (V, E) text features, L2-normalised.
    """
    was_training = model.training
    model.eval()
    try:
        text = {layer: text_features(model, values, batch_size) for layer, values in texts.items()}
    finally:
        model.train(was_training)
    table = predict(model, dataset, batch_size, lambda m, b: {"feat": video_features(m, b["video"])},
                    desc="video features")
    return None if table is None else (np.stack(table["feat"]), text)


def deme_loss(positives: Literal["each", "any"] = "each"):
    """The DeME-style step: a batch's videos against all their layers' texts (P = 3 positives per video).

    Returns:
        ``loss_fn(model, batch) -> {"loss"}`` for the trainer; the batch carries ``video`` (B, T, C, H, W) and the
        fields ``factual``, ``abstract``, ``intent`` (B texts each).
    """

    def loss(model: MPLUGVideoForContrastive, batch: dict) -> dict[str, torch.Tensor]:
        if batch["video"] is None:
            return zero_loss(model)
        texts = [text for item in zip(*(batch[layer] for layer in LAYERS)) for text in item]  # video by video
        model.contrastive.clamp_temperature()
        video_feat, text_feat = model.contrastive_features(batch["video"], texts)  # (B, E), (B*P, E)
        text_feat = text_feat.view(video_feat.shape[0], len(LAYERS), -1)  # (B, P, E)
        return {"loss": multi_positive_contrastive_loss(video_feat, text_feat, model.contrastive.temp,
                                                        positives=positives)}

    return loss


def designed_ceiling(truth: pd.DataFrame, video_ids: list[str], rng: np.random.Generator,
                     draws: int) -> dict[str, float]:
    """mini-Youku's designed ceilings on the videos `video_ids`: a perfect recogniser of the designed cues, ties
    broken at random (mean of `draws` draws).

    Args:
        truth: ``ground_truth.csv`` rows (``video_id`` and `vlstudy.data.mini_youku.oracle.GROUND_TRUTH_COLUMNS`).
        video_ids: the evaluation videos, in matrix order.
        rng: breaks the ties.
        draws: random tie-breaks averaged.

    Raises:
        ValueError: a video the ground truth does not list.
    """
    table = truth.drop_duplicates("video_id").set_index("video_id")
    absent = [v for v in video_ids if v not in table.index]
    if absent:
        raise ValueError(f"the ground truth lists {len(absent)} of the evaluation videos not, e.g. {absent[0]}")
    return tie_broken_summary(designed_layer_scores(table.loc[video_ids].reset_index()), rng=rng, draws=draws)


def candidate_ceilings(data_dir: str | Path, truth: pd.DataFrame, specs: list[str], rng: np.random.Generator,
                       draws: int) -> pd.DataFrame:
    """The designed ceilings of candidate evaluation splits, and how many of their videos share a source clip.

    Returns:
        One row per split: ``split``, ``videos``, ``sources`` (distinct ``source_id``), ``max_clips_per_source``,
        and the ceilings of t2v R@1 per layer, ``any2v_R@1``, ``v2t_hit_any_R@1``, ``v2t_hit_all_R@10``.
    """
    keys = [*(f"t2v_{layer}_R@1" for layer in LAYERS), "any2v_R@1", "v2t_hit_any_R@1", "v2t_hit_all_R@10"]
    rows = []
    for spec in specs:
        records = split_records(data_dir, spec)
        sources = records["source_id"].fillna(records["video_id"])
        ceiling = designed_ceiling(truth, records["video_id"].tolist(), rng, draws)
        rows.append({"split": spec, "videos": len(records), "sources": int(sources.nunique()),
                     "max_clips_per_source": int(sources.value_counts().max()), **{k: ceiling[k] for k in keys}})
    return pd.DataFrame(rows)


@dataclass
class DeMEConfig:
    """Attributes:
        init: the mPLUG-video dual encoder it starts from (``MPLUGVideoForContrastive`` weights).
        train_split: the prepared split whose videos and three layers it trains on ("task/split").
        num_frames: frames per clip (the retrieval recipe's 4).
        positives: video → text over a video's three texts: "each" (every layer must rank high) or "any".
        train: optimisation (one epoch at the official retrieval lr, continuing a fine-tuned model).
    """

    init: str = "checkpoints/finetune_retrieval/mplug_contrastive/model"
    train_split: str = "retrieval/train"
    num_frames: int = 4
    positives: Literal["each", "any"] = "each"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, min_lr=1e-5, warmup_steps=5, epochs=1,
                                                                   batch_size=32))

    def __post_init__(self) -> None:
        check_positive(self, "num_frames")
        parse_split(self.train_split, "deme.train_split")
        if self.positives not in ("each", "any"):
            raise ValueError(f"deme.positives must be 'each' or 'any', got {self.positives!r}")


def _default_models() -> dict[str, str]:
    return {method: f"checkpoints/finetune_retrieval/{method}/model" for method in ("mplug_contrastive", "alpro")}


@dataclass
class VideoMindRetrievalParams:
    """``videomind_retrieval``: VideoMind's Tables 2 and 3 for the kit's retrieval models and a DeME-style baseline.

    Attributes:
        models: the fine-tuned dual encoders evaluated zero-shot: retrieval method → its saved model folder.
        eval_split: the evaluation videos and their three layers ("task/split", "+" pools splits).
        candidate_splits: splits whose designed ceilings the notebook compares to choose `eval_split`.
        deme: the DeME-style multi-layer embedding baseline.
        ground_truth: mini-Youku's ground truth, for the designed ceilings; None for other data (no ceiling row).
        ceiling_draws: random tie-breaks averaged in a designed ceiling.
        eval_batch_size: videos or texts per batch at evaluation.
        decode: frame decoding and caching.
        n_boot: bootstrap resamples for the intervals.
        seed: DeME's training order and the bootstrap.
        nproc: processes (torchrun, one per GPU); 1 runs in the notebook's kernel.
    """

    models: dict[str, str] = field(default_factory=_default_models)
    eval_split: str = "captioning/test"
    candidate_splits: list[str] = field(default_factory=lambda: ["captioning/test", "captioning/val+test",
                                                                 "retrieval/val", "retrieval/test"])
    deme: DeMEConfig = field(default_factory=DeMEConfig)
    ground_truth: str | None = "data/mini_youku/ground_truth.csv"
    ceiling_draws: int = 20
    eval_batch_size: int = 32
    decode: VideoInputConfig = field(default_factory=VideoInputConfig)
    n_boot: int = 1000
    seed: int = 0
    nproc: int = 1

    def __post_init__(self) -> None:
        check_n_boot(self.n_boot)
        check_positive(self, "ceiling_draws", "eval_batch_size", "nproc")
        for spec in self.candidate_splits:
            parse_split(spec, "candidate_splits")
        task, splits = parse_split(self.eval_split, "eval_split")
        for name, (other, other_splits) in (("finetune_retrieval", (RETRIEVAL_TRAIN[0], (RETRIEVAL_TRAIN[1],))),
                                            ("deme", parse_split(self.deme.train_split))):
            seen = sorted(set(splits) & set(other_splits)) if task == other else []
            if seen:
                raise ValueError(f"eval_split {self.eval_split!r}: {task}/{seen[0]} is a training split of "
                                 f"{name}; evaluate on videos no model has seen")
        for name in self.models:
            if name not in DUAL_ENCODERS:
                raise ValueError(f"models.{name}: not a dual-encoder retrieval method of the kit "
                                 f"({', '.join(DUAL_ENCODERS)}); {DEME!r} names the baseline this stage trains")


def _similarities(model, records: pd.DataFrame, config: VideoMindRetrievalParams, paths: TaskPaths,
                  timer: PhaseTimer) -> dict[str, np.ndarray] | None:
    """layer → (V, V) scores of `model` on the evaluation records (rank 0; None elsewhere)."""
    with timer("decode"):
        dataset = video_dataset(records, model.config.video, config.decode, "eval", config.seed, paths.cache)
    with timer("evaluate"):
        features = layer_features(model, dataset, {layer: records[layer].tolist() for layer in LAYERS},
                                  config.eval_batch_size)
    return None if features is None else layer_similarities(*features)


def _train_deme(config: VideoMindRetrievalParams, paths: TaskPaths, eval_ids: set[str], timer: PhaseTimer):
    """The DeME-style model trained on `config.deme.train_split` (checked disjoint from the evaluation videos)."""
    deme = config.deme
    model = load_model(MPLUGVideoForContrastive, deme.init, True, deme.num_frames)
    records = split_records(paths.data, deme.train_split)
    shared = sorted(set(records["video_id"]) & eval_ids)
    if shared:
        raise ValueError(f"deme.train_split {deme.train_split!r} shares {len(shared)} videos with the evaluation "
                         f"split (e.g. {shared[0]})")
    with timer("decode"):
        train_set = video_dataset(records, model.config.video, config.decode, "train", config.seed, paths.cache,
                                  LAYERS)
    with timer("train"):
        summary = Trainer(model, model_train_config(model, deme.train), train_set, collate_videos,
                          deme_loss(deme.positives), Path(paths.work) / DEME).fit()
    return model, summary


def run(config: VideoMindRetrievalParams, paths: TaskPaths) -> TaskResult | None:
    timer = PhaseTimer()
    device = setup_distributed().device
    records = split_records(paths.data, config.eval_split)
    video_ids = records["video_id"].tolist()
    similarities, frames = {}, {}
    for name, folder in config.models.items():
        model = MODEL_CLASSES[name].from_pretrained(folder).to(device)
        similarities[name] = _similarities(model, records, config, paths, timer)
        frames[name] = model.config.video.num_frames
    model, summary = _train_deme(config, paths, set(video_ids), timer)
    similarities[DEME] = _similarities(model, records, config, paths, timer)
    frames[DEME] = model.config.video.num_frames
    if not is_main_process():
        return None

    out = Path(paths.out)
    with timer("write"):
        io.write_table(out / "videos.csv", records[["video_id", *LAYERS]])
        for name, layers in similarities.items():
            with io.atomic_path(out / f"similarity_{name}.npz") as tmp, open(tmp, "wb") as f:
                np.savez(f, **{layer: s.astype(np.float32) for layer, s in layers.items()})
        model.save_pretrained(out / DEME / "model")
        publish_log(summary.log_path, out / DEME / "train_log.jsonl")
    with timer("evaluate"):
        metrics: dict[str, Any] = {name: interval_summary(result, config.seed, config.n_boot)
                                   for name, result in load_results(out, list(similarities)).items()}
        if config.ground_truth:
            truth = pd.read_csv(config.ground_truth, keep_default_na=False, na_values=[""])
            ceiling = designed_ceiling(truth, video_ids, np.random.default_rng(config.seed), config.ceiling_draws)
            metrics["designed_ceiling"] = {key: {"estimate": value} for key, value in ceiling.items()}
    deme = config.deme
    return TaskResult(
        metrics=metrics,
        protocol={"split": config.eval_split, "videos": len(records), "queries_per_layer": len(records),
                  "frames": frames, "sampler": "middle", "scores": "cosine similarity of the dual encoders' features",
                  "ties": "pessimistic ranks", "interval": f"95% bootstrap over videos ({config.n_boot})",
                  "models": {**config.models, DEME: f"trained here from {deme.init} on {deme.train_split}'s three "
                                                    f"layers (positives={deme.positives!r})"},
                  "zero_shot": "each model as finetune_retrieval saved it; no training on VideoMind layers",
                  "designed_ceiling": None if not config.ground_truth else "a perfect recogniser of the designed "
                  f"cues, ties broken at random ({config.ceiling_draws} draws)"},
        training={"model": DEME, "steps": summary.final_step, "train_loss": summary.losses.get("loss"),
                  "samples_per_s": summary.samples_per_s, "skipped_videos": summary.skipped_videos},
        timings=timer.seconds)


def load_results(out: str | Path, models: list[str] | None = None) -> dict[str, MetricResult]:
    """model → its VideoMind metrics (per-video ranks and bootstrap statistics), from the task's saved matrices.

    Args:
        out: the task's output folder.
        models: the models to read, in this order (default: every ``similarity_<model>.npz``, by name).
    """
    out = Path(out)
    video_ids = pd.read_csv(out / "videos.csv")["video_id"].astype(str).tolist()
    names = models if models is not None else sorted(p.stem.removeprefix("similarity_")
                                                     for p in out.glob("similarity_*.npz"))
    results = {}
    for name in names:
        with np.load(out / f"similarity_{name}.npz") as saved:
            layers = {layer: saved[layer].astype(np.float64) for layer in LAYERS}
        results[name] = videomind_metrics(layers, video_ids=video_ids)
    return results

"""The clips and teachers of the Panda-70M stages: which clips each step reads, and the neural teachers' training.

Data flow (no teacher ever captions a clip it was trained on; every set is a different set of mini-Youku videos):

=========  ===========================  ==================================================================
set        clips                        used for
=========  ===========================  ==================================================================
``train``  captioning train (1 caption) the teachers' training (the ``video`` teacher is ``finetune_captioning``'s
                                        model, trained on exactly these clips)
``select`` retrieval val (1 caption)    teachers caption them; the oracle (their caption) labels the best:
                                        the selector's fine-tuning set (Panda's 100K annotated subset)
``pool``   retrieval train              teachers caption them; the fine-tuned selector picks: the student's
                                        training set (Panda-70M itself); its captions are never read
``eval``   captioning val (references)  teachers, selectors and students are all measured here: Fig. 3, R@1,
                                        Table 4
=========  ===========================  ==================================================================

Every clip shows its designed metadata (:func:`vlstudy.panda.teachers.design_metadata`) to the text-reading
models. All models read 16 frames from the frame caches of the captioning and retrieval splits (the selector
every fourth of them, the ``frame`` teacher one); the sets the models only read (``select``, ``pool``, ``eval``)
use the evaluation sampler (middle frames, no augmentation), also when the selector and the student train on them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from vlstudy.data.datasets import collate_videos
from vlstudy.data.prepared import load_split
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.panda.selection import FrameSubset
from vlstudy.panda.teachers import MetadataDesign, design_metadata, metadata_prompt
from vlstudy.tasks.captioning import first_captions, with_captions
from vlstudy.tasks.common import VideoInputConfig, load_model, model_train_config, predict, video_dataset, zero_loss
from vlstudy.tasks.pretrain_mplug_video import caption_loss
from vlstudy.train.config import recipe_train
from vlstudy.train.trainer import TrainConfig, Trainer

__all__ = ["SETS", "CACHED_FRAMES", "TeacherConfig", "ClipSets", "load_clip_sets", "clip_labels",
           "train_teacher", "cached_frames", "eval_dataset", "generate_captions"]

CACHED_FRAMES = 16  # frames cached per clip: the captioners' (official captioning: 16)
SETS = {"train": ("captioning", "train"), "select": ("retrieval", "val"), "pool": ("retrieval", "train"),
        "eval": ("captioning", "val")}


@dataclass
class TeacherConfig:
    """One teacher trained in the stage.

    Attributes:
        init: the mPLUG-video folder it starts from.
        train: its optimisation on the captioning train clips.
    """

    init: str = "checkpoints/finetune_captioning/mplug_video/model"
    train: TrainConfig = field(default_factory=recipe_train)


@dataclass
class ClipSets:
    """The record tables of the module docstring's sets and each clip's designed metadata (same row order)."""

    records: dict[str, pd.DataFrame]
    metadata: dict[str, pd.DataFrame]

    def prompts(self, name: str) -> list[str]:
        """The metadata prompt of every clip of set `name`."""
        meta = self.metadata[name]
        return [metadata_prompt(d, s) for d, s in zip(meta["description"], meta["subtitles"])]


def clip_labels(ground_truth: str | Path | None) -> dict[str, int] | None:
    """video id -> class from mini-Youku's ground truth (None without one: misleading texts are another clip's)."""
    if ground_truth is None:
        return None
    truth = pd.read_csv(ground_truth, usecols=["video_id", "label"])
    return dict(zip(truth["video_id"].astype(str), truth["label"].astype(int)))


def load_clip_sets(data: str | Path, sizes: dict[str, int | None], design: MetadataDesign, seed: int,
                   labels: dict[str, int] | None) -> ClipSets:
    """Every set's records (the first ``sizes[name]`` clips, all when None) and designed metadata."""
    records = {}
    for name, (task, split) in SETS.items():
        table = load_split(data, task, split)
        records[name] = table.head(sizes.get(name) or len(table)).reset_index(drop=True)
    with_captions(records["train"], "captioning train")
    with_captions(records["select"], "retrieval val (the selector's oracle references)")
    with_captions(records["eval"], "captioning val (the references)")
    metadata = {name: design_metadata(table, design, seed, labels) for name, table in records.items()}
    return ClipSets(records, metadata)


def train_teacher(config: TeacherConfig, sets: ClipSets, num_frames: int, frames: Sequence[int] | None,
                  prompted: bool, decode: VideoInputConfig, seed: int, work: Path, cache: str) -> MPLUGVideoModel:
    """An mPLUG-video teacher trained on the ``train`` clips.

    Args:
        config: where it starts and how it trains.
        sets: the clips; the ``train`` set's first caption of each clip is the target.
        num_frames: frames the model reads (of the 16 cached: `frames`, or all of them).
        frames: positions kept of the 16 cached frames (None: all).
        prompted: the clip's metadata prompt comes before the caption (else an empty prompt).
        decode, seed, work, cache: frame decoding, item randomness, the trainer's folder, the frame cache.
    """
    model = load_model(MPLUGVideoModel, config.init, True, num_frames)
    if prompted:  # room for the metadata before the caption
        model.config.max_text_length = min(model.config.max_text_length + 96,
                                           (model.max_positions or 10**6) - model.config.abstractor.num_queries)
    prompts = sets.prompts("train")
    dataset = video_dataset(sets.records["train"], cached_frames(model.config.video), decode, "train", seed, cache,
                            ("captions",))
    dataset = FrameSubset(dataset, frames) if frames is not None else dataset

    def loss(m: MPLUGVideoModel, batch: dict) -> dict[str, torch.Tensor]:
        if not prompted:
            return caption_loss(m, batch["video"], first_captions(batch))
        if batch["video"] is None:
            return zero_loss(m)
        tokens = m.tokenize([prompts[i] for i in batch["index"]], first_captions(batch))
        return {"loss": m(batch["video"], tokens.input_ids, tokens.attention_mask, tokens.labels).loss}

    Trainer(model, model_train_config(model, config.train), dataset, collate_videos, loss, work).fit()
    return model


def cached_frames(encoder: VideoEncoderConfig) -> VideoEncoderConfig:
    """`encoder`'s frame size with the cached frame count: datasets read :data:`CACHED_FRAMES` frames and a model
    reading fewer picks them with :class:`FrameSubset`."""
    config = copy.deepcopy(encoder)
    config.num_frames = CACHED_FRAMES
    return config


def eval_dataset(records: pd.DataFrame, encoder: VideoEncoderConfig, decode: VideoInputConfig, seed: int, cache: str,
                 frames: Sequence[int] | None = None):
    """The cached middle frames of each clip (evaluation sampler), or the positions `frames` of them."""
    dataset = video_dataset(records, cached_frames(encoder), decode, "eval", seed, cache)
    return FrameSubset(dataset, frames) if frames is not None else dataset


def generate_captions(model, dataset, batch_size: int, prompts: Sequence[str] | None,
                      caption: Callable[..., list[str]], desc: str) -> list[str]:
    """One caption per item of `dataset` (in order): ``caption(model, video, prompts)``; prompts per item or ""."""
    table = predict(model, dataset, batch_size, lambda m, b: {"caption": caption(
        m, b["video"], [prompts[i] for i in b["index"]] if prompts is not None else [""] * len(b["index"]))},
        desc=desc)
    return [str(c) for c in table["caption"]] if table is not None else []

"""A tiny prepared study for the instruction-tuning and human-evaluation stages: a few real mini-Youku captioning
videos (rendered from the generator's plan), their prepared record tables, the ground-truth CSV, and a tiny
mPLUG-video checkpoint over a random LM whose character vocabulary covers every instruction and answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer

from vlstudy.data.mini_youku.render import ENCODER_OPTIONS, render
from vlstudy.data.schema import Record, records_to_frame, write_table
from vlstudy.data.video import write_video
from vlstudy.humaneval.instructions import GROUNDED_ASPECTS, reference_answer, templates
from vlstudy.models.mplug_video import MPLUGVideoModel


@dataclass(frozen=True)
class TinyStudy:
    """Attributes:
        data: the prepared folder (captioning_train/val.parquet).
        truth: the ground-truth CSV of those videos.
        init: a saved tiny mPLUG-video (2 frames of 32 px, 4 queries) to start instruction tuning from.
    """

    data: Path
    truth: Path
    init: Path


def _vocabulary(truths) -> list[str]:
    """Every instruction template and every answer the tiny videos can get: the tiny LM's character vocabulary."""
    rng = np.random.default_rng(0)
    texts = [t for a in GROUNDED_ASPECTS for split in ("train", "eval") for t in templates(a, split)]
    for truth in truths:
        texts += [reference_answer(truth, a, rng) for a in GROUNDED_ASPECTS
                  for _ in range(4) if a != "scene_text" or truth.scene_text]
    return texts


def make_tiny_study(planned, root: Path, n_train: int = 8, n_val: int = 6) -> TinyStudy:
    """Render `n_train` train and `n_val` val captioning videos of the `planned_videos` fixture into `root`."""
    chosen = {"train": [], "val": []}
    for item, truth in zip(planned.items, planned.truths):
        if len(chosen[item.split]) < (n_train if item.split == "train" else n_val):
            chosen[item.split].append((item, truth))
    (root / "videos").mkdir(parents=True)
    (root / "prepared").mkdir()
    for split, pairs in chosen.items():
        records = []
        for item, _ in pairs:
            path = root / "videos" / item.video_id
            write_video(path, render(item.spec), item.spec.fps, ENCODER_OPTIONS)
            records.append(Record(video_id=item.video_id, video_path=str(path), captions=list(item.captions)))
        write_table(records_to_frame(records), root / "prepared" / f"captioning_{split}.parquet")
    ids = {item.video_id for pairs in chosen.values() for item, _ in pairs}
    planned.table[planned.table["video_id"].isin(ids)].to_csv(root / "ground_truth.csv", index=False)

    lm = save_tiny_lm("gpt2", tokenizer(_vocabulary([t for pairs in chosen.values() for _, t in pairs])),
                      root / "lm")
    torch.manual_seed(0)
    model = MPLUGVideoModel(mplug_config(lm, max_text_length=80))
    model.save_pretrained(root / "init")
    return TinyStudy(root / "prepared", root / "ground_truth.csv", root / "init")

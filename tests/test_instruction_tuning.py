"""Instruction tuning (stage ``instruction_tuning``): the pairs every cell trains on, the loss over a video's pairs,
and a real run on a tiny study: identical pairs for every cell, the loss going down, a strict checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _tiny_study import make_tiny_study

from vlstudy.config import ParamError, from_dict
from vlstudy.data.prepared import load_split
from vlstudy.humaneval.instructions import InstructionPairsConfig, ground, templates
from vlstudy.humaneval.rubric import grade_answer
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.tasks.common import TaskPaths, launch
from vlstudy.tasks.instruction_tuning import (
    InstructionTuningConfig,
    InstructionTuningParams,
    instruction_loss,
    run,
    training_pairs,
    truths_of,
)
from vlstudy.train.trainer import TrainConfig


@pytest.fixture(scope="module")
def study(planned_videos, tmp_path_factory):
    return make_tiny_study(planned_videos, tmp_path_factory.mktemp("study"))


def _config(study, **overrides) -> InstructionTuningConfig:
    train = TrainConfig(lr=2e-3, warmup_steps=1, max_steps=12, batch_size=4, log_every=1)
    return InstructionTuningConfig(init=str(study.init), truth=str(study.truth), num_frames=2, train=train,
                                   examples=2, max_new_tokens=12, **overrides)


def test_training_pairs_are_train_worded_truthful_and_the_same_for_every_cell(study):
    records = load_split(study.data, "captioning", "train")
    kept, pairs = training_pairs(records, _config(study))
    again = training_pairs(records, _config(study, pretrained=False))[1]
    pd.testing.assert_frame_equal(pairs, again)  # every responder trains on the same pairs
    assert kept["video_id"].tolist() == records["video_id"].tolist()
    assert pairs.groupby("video_id").size().eq(3).all()  # per_video 3 distinct aspects
    assert not pairs.duplicated(["video_id", "aspect"]).any()
    assert (pairs["item"] == pairs["video_id"].map({v: k for k, v in enumerate(kept["video_id"])})).all()
    truths = {t.video_id: t for t in truths_of(records, study.truth, "train")}
    for pair in pairs.itertuples():
        assert pair.instruction in templates(pair.aspect, "train")
        assert pair.instruction not in templates(pair.aspect, "eval")
        item = ground("q", truths[pair.video_id], pair.aspect, pair.instruction, np.random.default_rng(0))
        assert grade_answer(item, pair.answer).grade == "A", pair  # the answer states every asked fact
    few = training_pairs(records, _config(study, videos=3, pairs=InstructionPairsConfig(per_video=1)))
    assert len(few[0]) == 3 and len(few[1]) == 3


def test_truths_of_names_a_video_the_ground_truth_lacks(study, tmp_path):
    records = load_split(study.data, "captioning", "train")
    table = pd.read_csv(study.truth)
    table[table["video_id"] != records["video_id"].iloc[2]].to_csv(tmp_path / "gt.csv", index=False)
    with pytest.raises(KeyError, match=rf"no ground truth for captioning train video "
                                       rf"'{records['video_id'].iloc[2]}' \(1 of 8 missing\)"):
        truths_of(records, tmp_path / "gt.csv", "train")


def test_instruction_loss_is_the_token_mean_over_every_pair_of_every_video(study):
    torch.manual_seed(0)
    model = MPLUGVideoModel.from_pretrained(study.init).eval()
    video = torch.randn(2, 2, 3, 32, 32)
    pairs = [[("请描述一下这段视频。", "一位歌手在舞台上深情演唱。"), ("画面上写了什么字？", "画面中出现了文字。")],
             [("判断这个视频的类别。", "这是一个翻唱视频。")]]
    nll, tokens = 0.0, 0
    with torch.no_grad():
        loss = instruction_loss(model, video, pairs)["loss"]
        for clip, video_pairs in zip(video, pairs):  # naive: one sequence at a time
            for prompt, answer in video_pairs:
                batch = model.tokenize([prompt], [answer])
                n = int((batch.labels != -100).sum())
                nll += float(model(clip[None], batch.input_ids, batch.attention_mask, batch.labels).loss) * n
                tokens += n
    assert float(loss) == pytest.approx(nll / tokens, rel=1e-5)
    zero = instruction_loss(model, None, pairs)["loss"]
    assert float(zero.detach()) == 0.0 and zero.requires_grad


def test_run_trains_every_cell_on_the_same_pairs_and_saves_a_strict_checkpoint(study, tmp_path):
    results = {}
    for name, pretrained in (("mplug_video", True), ("mplug_video_no_pretrain", False)):
        config = _config(study, pretrained=pretrained)
        paths = TaskPaths(data=str(study.data), out=str(tmp_path / name), work=str(tmp_path / f"work-{name}"),
                          cache=str(tmp_path / "cache"))
        results[name] = launch(run, config, paths)
    first, second = (pd.read_csv(tmp_path / n / "pairs.csv") for n in results)
    pd.testing.assert_frame_equal(first, second)
    assert results["mplug_video"].protocol["pairs"] == len(first) == 24
    assert results["mplug_video_no_pretrain"].protocol["init"] == "from scratch"

    log = [json.loads(line) for line in (tmp_path / "mplug_video" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])  # it learns the answers

    loaded = MPLUGVideoModel.from_pretrained(tmp_path / "mplug_video" / "model")
    start = MPLUGVideoModel.from_pretrained(study.init)
    assert not torch.equal(loaded.abstractor.queries, start.abstractor.queries)  # the video side was tuned
    examples = pd.read_csv(tmp_path / "mplug_video" / "examples.csv", keep_default_na=False)
    assert len(examples) == 2
    assert all(ins in templates(a, "eval") for a, ins in zip(examples["aspect"], examples["instruction"]))


def test_params_defaults_and_checks():
    params = InstructionTuningParams()
    assert list(params.models) == ["mplug_video", "mplug_video_no_pretrain"]
    assert params.cell().pretrained and not params.models["mplug_video_no_pretrain"].pretrained
    same = {k: v for k, v in vars(params.models["mplug_video_no_pretrain"]).items() if k != "pretrained"}
    assert same == {k: v for k, v in vars(params.cell()).items() if k != "pretrained"}  # one recipe
    with pytest.raises(ParamError, match=r"model 'alpro' is not one of mplug_video, mplug_video_no_pretrain"):
        from_dict(InstructionTuningParams, {"model": "alpro"})
    with pytest.raises(ParamError, match=r"videos must be >= 1 or None \(all\), got 0"):
        from_dict(InstructionTuningConfig, {"videos": 0})

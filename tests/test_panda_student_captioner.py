"""Panda-70M student on mPLUG-video: without text it is mPLUG-video exactly; text rows train only the text branch;
save/load round trip."""

from __future__ import annotations

import pytest
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer
from safetensors.torch import load_file

from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.panda.student import TextQFormerConfig
from vlstudy.panda.student_captioner import StudentCaptioner

CAPTIONS = ["小猫在草地上玩球", "小狗在公园里奔跑"]
METADATA = ["简介：小猫。字幕：玩球。", "简介：一个人在厨房里做饭，篮球比赛的精彩瞬间。字幕：小狗。"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_tiny_lm("gpt2", tokenizer(), tmp_path_factory.mktemp("lm"))


def _student(lm_dir, seed: int = 0) -> StudentCaptioner:
    torch.manual_seed(seed)
    captioner = MPLUGVideoModel(mplug_config(lm_dir)).train()
    return StudentCaptioner(captioner, TextQFormerConfig(hidden_size=16, num_queries=3, num_layers=1, num_heads=2))


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_without_text_the_loss_and_captions_are_mplug_videos(lm_dir, video):
    student = _student(lm_dir).eval()
    none = torch.zeros(2, dtype=torch.bool)
    tokens = student.captioner.tokenize(["", ""], CAPTIONS)
    expected = student.captioner(video, tokens.input_ids, tokens.attention_mask, tokens.labels).loss
    torch.testing.assert_close(student.loss(video, METADATA, none, CAPTIONS), expected)
    assert student.generate(video, METADATA, none, max_new_tokens=6) == \
        student.captioner.generate(video, ["", ""], max_new_tokens=6)


def test_text_changes_the_caption_input_and_rows_keep_only_real_tokens(lm_dir, video):
    student = _student(lm_dir).eval()
    rows = student.prefix(video, METADATA, torch.tensor([True, False]))
    queries = student.captioner.config.abstractor.num_queries
    assert [tuple(r.shape) for r in rows] == [(queries + 3, 48), (queries, 48)]
    with_text = student.loss(video, METADATA, torch.ones(2, dtype=torch.bool), CAPTIONS)
    assert not torch.allclose(with_text, student.loss(video, METADATA, torch.zeros(2, dtype=torch.bool), CAPTIONS))


def _grads(student: StudentCaptioner, video, has_text) -> tuple[float, float]:
    student.zero_grad()
    student.loss(video, METADATA, has_text, CAPTIONS).backward()
    def total(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)
    return total(student.captioner.video_encoder) + total(student.captioner.abstractor), total(student.text_branch)


def test_text_rows_train_the_text_branch_only_and_video_rows_the_vision_branch_only(lm_dir, video):
    student = _student(lm_dir)
    vision, text = _grads(student, video, torch.ones(2, dtype=torch.bool))
    assert vision == 0.0 and text > 0.0
    vision, text = _grads(student, video, torch.zeros(2, dtype=torch.bool))
    assert vision > 0.0 and text == 0.0
    assert all(p.grad is None for p in student.captioner.lm.parameters())  # the LM stays frozen


def test_save_and_load_give_the_same_student(lm_dir, video, tmp_path):
    student = _student(lm_dir, seed=4).eval()
    student.save(tmp_path / "student")
    loaded = StudentCaptioner.load(tmp_path / "student").eval()
    both = torch.ones(2, dtype=torch.bool)
    torch.testing.assert_close(loaded.loss(video, METADATA, both, CAPTIONS), student.loss(video, METADATA, both,
                                                                                          CAPTIONS))
    saved = load_file(str(tmp_path / "student" / "captioner" / "model.safetensors"))
    assert saved and not any(k.startswith("lm.") for k in saved)  # the frozen LM is not copied

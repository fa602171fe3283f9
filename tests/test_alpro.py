"""ALPRO baseline: shapes, bidirectional fusion from the middle, VTC/VTM training, hard negatives, save/load."""

import copy
import json
import logging
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlstudy.models.alpro import (
    ALPROConfig,
    ALPROForClassification,
    ALPROForPretraining,
    ALPROModel,
    TextEncoderConfig,
)
from vlstudy.models.loading import CheckpointError
from vlstudy.models.losses import sample_hard_negatives
from vlstudy.models.text_lm import train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig

TEXTS = ["小猫在草地上玩球", "一个人在厨房里做饭", "篮球比赛", "小狗奔跑"]


def _config(**overrides) -> ALPROConfig:
    """A fresh tiny config (a model fills its derived fields, so tests do not share one)."""
    video = VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)
    return ALPROConfig(video=video, text=TextEncoderConfig(num_layers=4, num_heads=2, dropout=0.0, max_length=12),
                       **{"contrastive_dim": 16, **overrides})


@pytest.fixture(scope="module")
def tokenizer():
    return train_char_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return ALPROForPretraining(_config(), tokenizer).eval()


@pytest.fixture(scope="module")
def classifier(tokenizer):
    torch.manual_seed(0)
    return ALPROForClassification(_config(), tokenizer).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_tokenize_wraps_in_cls_sep_and_truncates(model, tokenizer):
    ids, mask = model.tokenize(["小猫", "小猫在草地上玩球一个人在厨房"])
    assert ids[0, :4].tolist() == [tokenizer.cls_token_id, *tokenizer("小猫")["input_ids"], tokenizer.sep_token_id]
    assert ids.shape == (2, 12) and ids[1, -1].item() == tokenizer.sep_token_id
    assert mask.tolist() == [[1] * 4 + [0] * 8, [1] * 12]


def test_shapes_and_derived_widths(model, video):
    ids, mask = model.tokenize(TEXTS)
    assert model.encode_video(video).shape == (4, 1 + 4, 32)  # CLS + patches averaged over time
    text = model.encode_text(ids, mask)
    assert text.shape == (4, ids.shape[1], 32)
    assert model.fuse(text, mask, model.encode_video(video)).shape == text.shape
    assert len(model.text_encoder.encoder.layer) == len(model.fusion_encoder.layer) == 2  # fusion from the middle
    assert not hasattr(model.text_encoder.encoder.layer[0], "crossattention")
    video_feat, text_feat = model.features(video, ids, mask)
    assert video_feat.shape == text_feat.shape == (4, 16)


def test_fusion_is_bidirectional_and_reads_the_video(model, video):
    ids, mask = model.tokenize(["小猫在草地上玩球", "小猫在草地上玩球"])
    ids[1, 5] = ids[0, 3]  # change a late token of the second text only
    text = model.encode_text(ids, mask)
    videos = model.encode_video(video[:2])
    same_video = model.fuse(text, mask, videos[[0, 0]])
    assert not torch.allclose(same_video[0, 0], same_video[1, 0])  # fused CLS sees a later token: not causal
    assert not torch.allclose(text[0, 0], text[1, 0])  # so does the text-only CLS
    other_video = model.fuse(text, mask, videos[[1, 1]])
    assert not torch.allclose(other_video[0, 0], same_video[0, 0])  # cross-attention is active


def test_classification_follows_the_ablation_switches(classifier, video):
    ids, mask = classifier.tokenize(TEXTS)
    assert classifier.classify(video, ids, mask).shape == (4, 45)
    torch.testing.assert_close(classifier.classify(video), classifier.cls_head(classifier.encode_video(video)[:, 0]))
    torch.testing.assert_close(classifier.classify(None, ids, mask),
                               classifier.cls_head(classifier.encode_text(ids, mask)[:, 0]))
    with pytest.raises(ValueError, match="classify needs a video, a text, or both"):
        classifier.classify()


def test_hard_negatives_are_never_the_positive_and_follow_the_seed():
    similarity = torch.eye(5) * 50.0 + torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    draws = torch.stack([sample_hard_negatives(similarity, torch.Generator().manual_seed(s)) for s in range(200)])
    assert not (draws == torch.arange(5)).any()
    torch.testing.assert_close(sample_hard_negatives(similarity, torch.Generator().manual_seed(7)),
                               sample_hard_negatives(similarity, torch.Generator().manual_seed(7)))
    peaked = torch.zeros(3, 3)
    peaked[0, 2] = 30.0  # row 0 prefers column 2 overwhelmingly
    assert sample_hard_negatives(peaked, torch.Generator().manual_seed(0))[0].item() == 2
    with pytest.raises(ValueError, match="at least 2 pairs"):
        sample_hard_negatives(torch.zeros(1, 1), torch.Generator())


def test_vtc_and_vtm_fall_over_a_few_steps(tokenizer, video):
    # At initialisation BERT's text CLS hardly depends on the text (its features are almost equal), so on 4 pairs
    # the loss sits at chance (log 4) until the symmetric start breaks, after a seed-dependent 15-30 steps.
    torch.manual_seed(0)
    model = ALPROForPretraining(_config(), tokenizer).train()
    ids, mask = model.tokenize(TEXTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(3)
    history = []
    for _ in range(40):
        losses = model.pretrain_losses(video, ids, mask, generator, objectives=("vtc", "vtm"))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    first, last = history[:3], history[-3:]
    for name in ("vtc", "vtm"):
        assert sum(h[name] for h in last) < sum(h[name] for h in first), name
    assert history[-1]["vtc"] < math.log(4) / 2  # well below chance on 4 pairs: the pairs are told apart


def test_temperature_is_clamped(tokenizer, video):
    model = ALPROForPretraining(_config(), tokenizer)
    ids, mask = model.tokenize(TEXTS)
    for value, clamped in [(5.0, 0.5), (1e-6, 0.001)]:
        with torch.no_grad():
            model.contrastive.temp.fill_(value)
        model.pretrain_losses(video, ids, mask, torch.Generator().manual_seed(0))
        assert model.contrastive.temp.item() == pytest.approx(clamped)


@pytest.mark.parametrize("which", ["model", "classifier"])
def test_save_load_round_trip_is_bit_identical(request, which, video, tmp_path):
    model = request.getfixturevalue(which)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["text"]["vocab_size"] == len(model.tokenizer)  # derived from the tokenizer, stored
    loaded = type(model).from_pretrained(tmp_path)
    ids, mask = loaded.tokenize(TEXTS)
    assert torch.equal(ids, model.tokenize(TEXTS)[0])
    with torch.no_grad():
        if which == "classifier":
            assert torch.equal(loaded.classify(video, ids, mask), model.classify(video, ids, mask))
        else:
            generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
            assert torch.equal(loaded.pretrain_losses(video, ids, mask, generator())["loss"],
                               model.pretrain_losses(video, ids, mask, generator())["loss"])
            assert torch.equal(loaded.match_logits(video, ids, mask), model.match_logits(video, ids, mask))


def test_a_pretraining_checkpoint_fine_tunes_a_classifier(model, video, tmp_path, caplog):
    """The MLP head a pre-training checkpoint lacks is initialised, its VTC/VTM heads are dropped, both logged; the
    backbone is exact. (An MLM head added to ALPROForPretraining would load from older checkpoints the same way.)"""
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        classifier = ALPROForClassification.from_pretrained(tmp_path)
    assert "ALPROForClassification: ['cls_head.0.bias', 'cls_head.0.weight', 'cls_head.2.bias', 'cls_head.2.weight']" \
           " initialised" in caplog.text
    assert "['contrastive.temp', 'contrastive.text_proj.bias'" in caplog.text and "dropped" in caplog.text
    with torch.no_grad():
        assert torch.equal(classifier.encode_video(video), model.encode_video(video))


def test_strict_loading_names_the_tensor_and_the_file(model, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    wider = copy.deepcopy(ALPROConfig.from_pretrained(tmp_path))
    wider.contrastive_dim = 32
    with pytest.raises(CheckpointError, match=rf"^{weights}: tensor 'contrastive.text_proj.bias' has shape \(16\) "
                                              r"in the file but \(32\) in the model; "
                                              r"tensor 'contrastive.text_proj.weight' "):
        ALPROForPretraining.from_pretrained(tmp_path, config=wider)
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if not k.startswith("fusion_encoder.layer.1.")}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensors \['fusion_encoder.layer.1."):
        ALPROForClassification.from_pretrained(tmp_path)  # a backbone tensor: never allowed


def test_a_tokenizer_of_another_vocabulary_is_refused(model):
    config = _config()
    config.text.vocab_size = len(model.tokenizer) + 1
    with pytest.raises(ValueError, match=rf"^text.vocab_size is {len(model.tokenizer) + 1} but the tokenizer's is "
                                         rf"{len(model.tokenizer)}$"):
        ALPROModel(config, model.tokenizer)

"""Activation checkpointing through transformers' API, for every model and every training stage's loss: the same
loss and the same gradients as without it (dropout on), every block kind actually recomputed in the backward
pass (the frozen LM's too), less activation memory, and the trainer's ``gradient_checkpointing`` flag."""

from collections import Counter

import pytest
import torch
from _tiny_models import CORPUS, mplug_config, save_tiny_lm, tokenizer
from transformers.modeling_layers import GradientCheckpointingLayer

from vlstudy.data.prompts import classification_prompt
from vlstudy.models.alpro import ALPROConfig, ALPROForClassification, ALPROForPretraining, TextEncoderConfig
from vlstudy.models.mplug_video import (
    MPLUGVideoForClassification,
    MPLUGVideoForContrastive,
    MPLUGVideoForMatching,
)
from vlstudy.models.video_encoder import VideoEncoderConfig
from vlstudy.tasks.pretrain_mplug_video import caption_loss
from vlstudy.train.memory import saved_activation_bytes
from vlstudy.train.trainer import TrainConfig, Trainer

VIDEO = dict(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=2, num_heads=2, dropout=0.1)
TITLES = CORPUS[:2]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return save_tiny_lm("gpt2", tokenizer(), tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _mplug(model_class, lm_dir):
    torch.manual_seed(0)
    config = mplug_config(lm_dir, video=VIDEO)
    config.abstractor.dropout = 0.1
    return model_class(config).train()


def _alpro(model_class):
    torch.manual_seed(0)
    config = ALPROConfig(video=VideoEncoderConfig(**VIDEO), text=TextEncoderConfig(num_layers=4, num_heads=2,
                                                                                     max_length=16), contrastive_dim=16)
    return model_class(config, tokenizer()).train()  # BERT dropout 0.1


MPLUG_BLOCKS = {"TimesformerLayer", "AbstractorBlock", "GPT2Block"}  # video encoder, abstractor, frozen LM
# Each training stage's loss: model builder, loss(model, video), the blocks on its gradient path.
STAGES = {
    "pretrain_mplug_video": (lambda d: _mplug(MPLUGVideoForContrastive, d), lambda m, v: (
        caption_loss(m, v, TITLES)["loss"] + m.contrastive_loss(v, TITLES)), MPLUG_BLOCKS),
    "captioning_language_only": (lambda d: _mplug(MPLUGVideoForContrastive, d), lambda m, v: (
        m(None, *[getattr(m.tokenize([""] * 2, TITLES), k) for k in ("input_ids", "attention_mask", "labels")]).loss),
        {"AbstractorBlock", "GPT2Block"}),
    "classification_mplug": (lambda d: _mplug(MPLUGVideoForClassification, d), lambda m, v: (
        m.classification_loss(v, [classification_prompt(t) for t in TITLES], torch.tensor([3, 7]))["loss"]),
        MPLUG_BLOCKS),
    "retrieval_matching": (lambda d: _mplug(MPLUGVideoForMatching, d), lambda m, v: (
        m.match_loss(v, TITLES, torch.tensor([True, False]))["loss"]), MPLUG_BLOCKS),
    "retrieval_contrastive": (lambda d: _mplug(MPLUGVideoForContrastive, d), lambda m, v: m.contrastive_loss(v, TITLES),
                              {"TimesformerLayer"}),  # video CLS ↔ the frozen LM's text state (no gradient there)
    "pretrain_alpro": (lambda d: _alpro(ALPROForPretraining), lambda m, v: (
        m.pretrain_losses(v, *m.tokenize(TITLES), torch.Generator().manual_seed(1))["loss"]),
        {"TimesformerLayer", "BertLayer"}),
    "classification_alpro": (lambda d: _alpro(ALPROForClassification), lambda m, v: (
        torch.nn.functional.cross_entropy(m.classify(v, *m.tokenize(TITLES)), torch.tensor([3, 7]))),
        {"TimesformerLayer", "BertLayer"}),
}


def _step(model, loss_fn, video):
    """Loss, gradients and, per checkpointable block, how often its first child ran (forward + recomputation)."""
    calls = Counter()

    def counter(kind: str):
        return lambda *_: calls.update([kind])

    hooks = [next(layer.children()).register_forward_hook(counter(type(layer).__name__))
             for layer in model.modules() if isinstance(layer, GradientCheckpointingLayer)]
    model.zero_grad()
    torch.manual_seed(1)  # the same dropout masks in both runs
    loss = loss_fn(model, video)
    loss.backward()
    for hook in hooks:
        hook.remove()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, calls


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_checkpointing_gives_the_same_loss_and_gradients(stage, lm_dir, video):
    build, loss_fn, blocks = STAGES[stage]
    model = build(lm_dir)
    loss, grads, calls = _step(model, loss_fn, video)
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    checkpointed_loss, checkpointed_grads, recomputed = _step(model, loss_fn, video)
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=0)
    assert checkpointed_grads.keys() == grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=0, atol=0, msg=name)
    # every kind of block on the gradient path ran again in the backward pass
    assert {kind for kind in recomputed if recomputed[kind] > calls[kind]} == blocks, (calls, recomputed)


def test_checkpointing_saves_activation_memory(lm_dir, video):
    model = _mplug(MPLUGVideoForContrastive, lm_dir)
    batch = model.tokenize([""] * 2, TITLES)

    def loss():
        return model(video, batch.input_ids, batch.attention_mask, batch.labels).loss

    full = saved_activation_bytes(loss, model)
    model.activation_checkpointing_enable()
    assert saved_activation_bytes(loss, model) < 0.5 * full


class Clips(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        clip = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(index))
        return {"video": clip, "title": CORPUS[index]}


def _collate(items):
    return {"video": torch.stack([i["video"] for i in items]), "title": [i["title"] for i in items]}


def test_the_trainer_flag_checkpoints_a_video_model_with_the_same_losses(lm_dir, tmp_path):
    losses = {}
    for flag in (False, True):
        model = _mplug(MPLUGVideoForContrastive, lm_dir)
        config = TrainConfig(lr=1e-3, max_steps=2, batch_size=2, log_every=1, precision="fp32",
                             gradient_checkpointing=flag)
        trainer = Trainer(model, config, Clips(), _collate, lambda m, b: caption_loss(m, b["video"], b["title"]),
                          tmp_path / str(flag))
        assert model.is_activation_checkpointing == flag
        summary = trainer.fit()
        losses[flag] = summary.losses["loss"]
    assert losses[True] == losses[False]

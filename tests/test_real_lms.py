"""mPLUG-video over real Hugging Face causal-LM architectures (GPT-2, BLOOM, Qwen2), read from local folders.

Each LM is a tiny random model of that family saved with ``save_pretrained`` (safetensors), with the kit's Chinese
character tokenizer saved beside it, as a real checkpoint folder would hold. The frozen decoder then drives the
three things mPLUG-video asks of it: the prefix LM loss, decoding, and ranking the 45 class names through a
repeated key/value cache.
"""

import pytest
import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer

from vlstudy.models.mplug_video import MPLUGVideoForClassification, classification_prompt

KINDS = ["gpt2", "bloom", "qwen2"]


@pytest.fixture(scope="module", params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def model(kind, tmp_path_factory):
    folder = save_tiny_lm(kind, tokenizer(), tmp_path_factory.mktemp(kind), seed=1, init_std=0.2)
    torch.manual_seed(2)
    return MPLUGVideoForClassification(mplug_config(folder)).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_the_lm_family_is_read_from_its_folder(kind, model):
    assert model.lm.config.model_type == kind
    assert not any(p.requires_grad for p in model.lm.parameters())


def test_prefix_loss_equals_the_lm_own_loss(model, video):
    batch = model.tokenize(["小猫在", "篮球"], ["玩球", "比赛的精彩瞬间"])  # right-padded
    out = model(video, batch.input_ids, batch.attention_mask, batch.labels)
    prefix = model.visual_prefix(video, 2)  # (B, Q, D)
    embeds = torch.cat([prefix, model.lm.get_input_embeddings()(batch.input_ids)], dim=1)
    labels = torch.cat([torch.full((2, prefix.shape[1]), -100), batch.labels], dim=1)
    mask = torch.cat([torch.ones(2, prefix.shape[1], dtype=torch.long), batch.attention_mask], dim=1)
    torch.testing.assert_close(out.loss, model.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss)


def test_greedy_decoding_equals_a_manual_argmax_loop(model, video):
    tok, embed = model.tokenizer, model.lm.get_input_embeddings()
    prompts = ["", "小猫在草地上"]  # different lengths: the batch is left-padded
    expected = []
    with torch.no_grad():
        for b, prompt in enumerate(prompts):
            sequence = torch.cat([model.visual_prefix(video[b: b + 1], 1)[0],
                                  embed(torch.tensor([tok.bos_token_id, *tok(prompt)["input_ids"]]))])
            new = []
            for _ in range(5):
                next_id = model.lm(inputs_embeds=sequence[None]).logits[0, -1].argmax().item()
                if next_id == tok.eos_token_id:
                    break
                new.append(next_id)
                sequence = torch.cat([sequence, embed(torch.tensor([next_id]))])
            expected.append(new)
    assert all(expected)  # a non-trivial continuation for each prompt
    ids = model.generate_ids(video, prompts, max_new_tokens=5).tolist()
    assert [row[:len(e)] for row, e in zip(ids, expected)] == expected
    assert model.generate(video, prompts, max_new_tokens=5) == [tok.decode(e, skip_special_tokens=True)
                                                                 for e in expected]


def test_class_ranking_through_the_cache_equals_a_naive_loop(model, video):
    prompts = [classification_prompt("小猫在草地上玩球"), classification_prompt("")]
    scores = model.classify(video, prompts)
    assert scores.generative.shape == scores.head.shape == (2, 45)
    for b, prompt in enumerate(prompts):
        for k, name in [(0, "翻唱"), (2, "电视剧周边（预告/杂谈）"), (44, "美食测评")]:
            batch = model.tokenize([prompt], [name])
            with torch.no_grad():
                loss = model(video[b: b + 1], batch.input_ids, batch.attention_mask, batch.labels).loss
            num_tokens = (batch.labels != -100).sum()
            torch.testing.assert_close(scores.generative[b, k], -loss * num_tokens, atol=1e-4, rtol=1e-5)


def test_round_trip_with_the_lm_left_out(model, video, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = MPLUGVideoForClassification.from_pretrained(tmp_path)
    prompts = [classification_prompt("篮球")] * 2
    assert torch.equal(loaded.classify(video, prompts).generative, model.classify(video, prompts).generative)

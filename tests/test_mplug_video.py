"""mPLUG-video: derived widths, the frozen LM, the answer-only loss, scoring, generation, heads, save/load."""

import dataclasses
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

from vlstudy.models.abstractor import AbstractorConfig
from vlstudy.models.checkpoint_io import CheckpointError
from vlstudy.models.mplug_video import (
    MATCH_ANSWERS,
    PROTOCOL_TEXTS,
    MPLUGVideo,
    MPLUGVideoConfig,
    classification_prompt,
    match_prompt,
    tokenize_prompts,
)
from vlstudy.models.text_lm import PackedTextDataset, TextLMConfig, build_text_lm, save_text_lm, train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig

CORPUS = ["小猫在草地上玩球", "小狗在公园里奔跑", "一个人在厨房里做饭", "篮球比赛的精彩瞬间"]
LM = TextLMConfig(hidden_size=48, num_layers=2, num_heads=2, max_positions=96, dropout=0.0)
VIDEO = VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny LM trained a little on the corpus, so that greedy decoding is not degenerate."""
    torch.manual_seed(0)
    tokenizer = train_char_tokenizer(CORPUS, always_include=PROTOCOL_TEXTS)
    lm = build_text_lm(LM, tokenizer)
    blocks = PackedTextDataset(CORPUS * 4, tokenizer, block_size=16).blocks
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    for _ in range(15):
        loss = lm(input_ids=blocks, labels=blocks).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("lm")
    save_text_lm(lm, tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def config(lm_dir):
    return MPLUGVideoConfig(video=VIDEO, abstractor=AbstractorConfig(num_queries=4, num_heads=2),
                            lm_path=str(lm_dir), max_text_length=48)


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(1)
    return MPLUGVideo(config).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_widths_are_derived_from_the_video_encoder_and_the_lm(model):
    assert model.abstractor.queries.shape[-1] == VIDEO.hidden_size
    assert model.abstractor.proj.out_features == model.lm.config.hidden_size == LM.hidden_size
    assert model.vision_proj.in_features == VIDEO.hidden_size
    assert model.text_proj.in_features == model.cls_head[1].in_features == LM.hidden_size
    assert model.visual_prefix(None, batch_size=3).shape == (3, 4, LM.hidden_size)


def test_lm_is_frozen_counted_and_logged(config, caplog):
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        model = MPLUGVideo(config)
    non_lm = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("lm."))
    assert model.num_trainable == non_lm
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert model.trainable_ratio == pytest.approx(non_lm / sum(p.numel() for p in model.parameters()))
    assert f"mPLUG-video: {non_lm} trainable of {model.num_total} parameters " \
           f"({100 * model.trainable_ratio:.2f}%)" in caplog.text
    model.train()
    assert model.training and model.abstractor.training and not model.lm.training


def test_training_changes_the_video_side_only_and_lowers_the_loss(config, video):
    torch.manual_seed(3)
    model = MPLUGVideo(config).train()
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    video_before = {k: v.clone() for k, v in model.video_encoder.state_dict().items()}
    batch = model.tokenize(["", ""], ["小猫在草地上玩球", "一个人在厨房里做饭"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(video, batch.input_ids, batch.attention_mask, batch.labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, lm_before[k]) for k, v in model.lm.state_dict().items())
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert any(not torch.equal(v, video_before[k]) for k, v in model.video_encoder.state_dict().items())


def test_tokenize_labels_answer_and_eos_only(model):
    tok = model.tokenizer
    batch = model.tokenize(["小猫", ""], ["玩球", "做饭了"])
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    ids = lambda s: tok(s)["input_ids"]  # noqa: E731
    assert batch.input_ids.tolist() == [[bos, *ids("小猫"), *ids("玩球"), eos],
                                        [bos, *ids("做饭了"), eos, pad]]
    assert batch.labels.tolist() == [[-100, -100, -100, *ids("玩球"), eos], [-100, *ids("做饭了"), eos, -100]]
    assert batch.attention_mask.tolist() == [[1] * 6, [1] * 5 + [0]]
    assert batch.prompt_lengths.tolist() == [3, 1]


def test_tokenize_prompts_truncates_the_tail_and_checks_lengths(model):
    tok = model.tokenizer
    batch = tokenize_prompts(tok, ["小猫"], ["玩球玩球"], max_length=5)
    assert batch.input_ids.tolist() == [[tok.bos_token_id, *tok("小猫玩球")["input_ids"]]]
    assert batch.labels.tolist() == [[-100, -100, -100, *tok("玩球")["input_ids"]]]
    with pytest.raises(ValueError, match="^2 prompts but 1 answers$"):
        tokenize_prompts(tok, ["a", "b"], ["c"], max_length=5)


def test_loss_is_the_token_mean_over_answer_and_eos(model, video):
    batch = model.tokenize(["小猫在", "篮球"], ["玩球", "比赛的精彩瞬间"])
    out = model(video, batch.input_ids, batch.attention_mask, batch.labels)
    # By hand: -log p(token) at every answer/EOS position, averaged over those positions only.
    positions = torch.arange(batch.input_ids.shape[1]) >= batch.prompt_lengths[:, None]
    answer = positions & batch.attention_mask.bool()
    logp = out.token_logits.log_softmax(-1).gather(-1, batch.input_ids[..., None]).squeeze(-1)
    torch.testing.assert_close(out.loss, -logp[answer].mean())
    # Independently: Hugging Face's own shifted loss on the full sequence, prefix labels masked.
    prefix = model.visual_prefix(video, 2)
    embeds = torch.cat([prefix, model.lm.get_input_embeddings()(batch.input_ids)], dim=1)
    full_labels = torch.cat([torch.full((2, 4), -100), batch.labels], dim=1)
    mask = torch.cat([torch.ones(2, 4, dtype=torch.long), batch.attention_mask], dim=1)
    reference = model.lm(inputs_embeds=embeds, attention_mask=mask, labels=full_labels).loss
    torch.testing.assert_close(out.loss, reference)
    # A prompt token's label is ignored: un-masking it (to any id) is the only way to change the loss.
    relabelled = batch.labels.clone()
    relabelled[0, 1] = batch.input_ids[0, 1]
    assert not torch.isclose(model(video, batch.input_ids, batch.attention_mask, relabelled).loss, out.loss)


def test_score_continuations_equals_a_naive_loop(model, video):
    prompts = [classification_prompt("小猫在草地上玩球"), classification_prompt("")]
    candidates = ["宠物", "篮球", "电视剧周边（预告/杂谈）"]
    scores = model.score_continuations(video, prompts, candidates)
    assert scores.shape == (2, 3)
    for b, prompt in enumerate(prompts):
        for k, candidate in enumerate(candidates):
            batch = model.tokenize([prompt], [candidate])
            with torch.no_grad():
                loss = model(video[b: b + 1], batch.input_ids, batch.attention_mask, batch.labels).loss
            num_tokens = (batch.labels != -100).sum()
            torch.testing.assert_close(scores[b, k], -loss * num_tokens, atol=1e-4, rtol=1e-5)


def test_classify_gives_both_score_sets(model, video):
    prompts = [classification_prompt("小猫"), classification_prompt("篮球比赛")]
    scores = model.classify(video, prompts)
    assert scores.generative.shape == scores.head.shape == (2, 45)
    batch = model.tokenize(prompts)
    with torch.no_grad():
        out = model(video, batch.input_ids, batch.attention_mask)
        torch.testing.assert_close(scores.head, model.cls_head(out.prompt_state(batch.prompt_lengths)))
    losses = model.classification_loss(video, prompts, torch.tensor([36, 12]))
    torch.testing.assert_close(losses["loss"], losses["lm_loss"] + losses["cls_loss"])


def _manual_greedy(model, video, prompt, max_new_tokens):
    tok, embed = model.tokenizer, model.lm.get_input_embeddings()
    sequence = torch.cat([model.visual_prefix(video, 1)[0], embed(torch.tensor([tok.bos_token_id,
                                                                                *tok(prompt)["input_ids"]]))])
    new = []
    for _ in range(max_new_tokens):
        next_id = model.lm(inputs_embeds=sequence[None]).logits[0, -1].argmax().item()
        if next_id == tok.eos_token_id:
            break
        new.append(next_id)
        sequence = torch.cat([sequence, embed(torch.tensor([next_id]))])
    return tok.decode(new, skip_special_tokens=True)


def test_greedy_generation_equals_a_manual_argmax_loop(model, video):
    prompts = ["", "小猫在草地上"]  # different lengths: the batch is left-padded
    with torch.no_grad():
        expected = [_manual_greedy(model, video[b: b + 1], p, 6) for b, p in enumerate(prompts)]
    assert all(expected)
    assert model.generate(video, prompts, max_new_tokens=6) == expected


def test_beam_search_returns_one_string_per_video(model, video):
    captions = model.generate(video, ["", ""], num_beams=5, length_penalty=1.0, max_new_tokens=5)
    assert len(captions) == 2 and all(isinstance(c, str) and len(c) <= 5 for c in captions)


def test_match_scores_every_pair_with_yes_minus_no(model, video):
    texts = ["小猫在玩球", "篮球比赛", "做饭"]
    scores = model.match_scores(video, texts, chunk_size=4)  # chunks cut across videos
    assert scores.generative.shape == scores.head.shape == (2, 3)
    for b, k in [(0, 0), (1, 2)]:
        logp = {}
        for answer in MATCH_ANSWERS:
            batch = model.tokenize([match_prompt(texts[k])], [answer])
            with torch.no_grad():
                out = model(video[b: b + 1], batch.input_ids, batch.attention_mask)
            position = batch.prompt_lengths[0]
            logp[answer] = out.token_logits[0, position].log_softmax(-1)[batch.input_ids[0, position]]
            head = model.match_head(out.prompt_state(batch.prompt_lengths))[0]
        torch.testing.assert_close(scores.generative[b, k], logp["是"] - logp["否"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(scores.head[b, k], head[1] - head[0], atol=1e-5, rtol=1e-5)
    losses = model.match_loss(video, texts[:2], torch.tensor([True, False]))
    torch.testing.assert_close(losses["loss"], losses["lm_loss"] + losses["match_loss"])


def test_contrastive_mode_trains_projections_not_the_lm(config, video):
    torch.manual_seed(4)
    model = MPLUGVideo(config)
    video_feat, text_feat = model.contrastive_features(video, ["小猫", "篮球比赛", "做饭"])
    assert video_feat.shape == (2, 256) and text_feat.shape == (3, 256)
    torch.testing.assert_close(text_feat.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        model.temp.fill_(5.0)
    loss = model.contrastive_loss(video, ["小猫", "篮球比赛"])
    assert model.temp.item() == 0.5
    loss.backward()
    assert torch.isfinite(loss)
    assert model.vision_proj.weight.grad.abs().sum() > 0 and model.text_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.lm.parameters())


def test_language_only_uses_the_soft_prompt(model):
    batch = model.tokenize(["小猫", "篮球"], ["玩球", "比赛"])
    out = model(None, batch.input_ids, batch.attention_mask, batch.labels)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.hidden_states[0, :4], out.hidden_states[1, :4])  # same prefix for both


def test_save_load_round_trip_gives_identical_outputs(model, video, tmp_path):
    model.save_pretrained(tmp_path)
    assert not [name for name in load_file(str(tmp_path / "model.safetensors")) if name.startswith("lm.")]
    loaded = MPLUGVideo.from_pretrained(tmp_path).eval()
    batch = model.tokenize(["小猫"], ["玩球"])
    for m in (model, loaded):
        m.zero_grad()
    with torch.no_grad():
        torch.testing.assert_close(loaded(video[:1], batch.input_ids, batch.attention_mask).token_logits,
                                   model(video[:1], batch.input_ids, batch.attention_mask).token_logits)
    assert loaded.generate(video, ["", ""], max_new_tokens=4) == model.generate(video, ["", ""], max_new_tokens=4)


def test_loading_with_more_frames_resamples_time_embeddings(model, config, tmp_path):
    model.save_pretrained(tmp_path)
    longer = dataclasses.replace(config, video=dataclasses.replace(config.video, num_frames=4))
    loaded = MPLUGVideo.from_pretrained(tmp_path, longer)
    assert loaded.visual_prefix(torch.randn(1, 4, 3, 32, 32), 1).shape == (1, 4, LM.hidden_size)


def test_checkpoint_errors_name_the_file_and_tensor(model, config, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    more_queries = dataclasses.replace(config, abstractor=dataclasses.replace(config.abstractor, num_queries=8))
    with pytest.raises(CheckpointError, match=rf"^{weights}: tensor 'abstractor.queries' has shape \(1, 4, 32\) "
                                              r"in the file but \(1, 8, 32\) in the model$"):
        MPLUGVideo.from_pretrained(tmp_path, more_queries)

    tensors = load_file(str(weights))
    save_file({k: v for k, v in tensors.items() if k != "temp"}, str(weights))
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensor 'temp'$"):
        MPLUGVideo.from_pretrained(tmp_path)
    save_file({**tensors, "extra": torch.zeros(1)}, str(weights))
    with pytest.raises(CheckpointError, match=rf"^{weights}: unexpected tensor 'extra' \(not in MPLUGVideo\)$"):
        MPLUGVideo.from_pretrained(tmp_path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{weights}: no such checkpoint file$"):
        MPLUGVideo.from_pretrained(tmp_path)


def test_an_lm_without_a_folder_cannot_be_saved(lm_dir, tmp_path):
    tokenizer = train_char_tokenizer(CORPUS)
    model = MPLUGVideo(MPLUGVideoConfig(video=VIDEO, lm=LM, max_text_length=32), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="has no folder: save it with text_lm.save_text_lm and set lm_path"):
        model.save_pretrained(tmp_path)


def test_prefix_plus_text_must_fit_the_lm_positions(config):
    with pytest.raises(ValueError, match=r"^4 queries \+ max_text_length 200 exceed the LM's 96 positions$"):
        MPLUGVideo(dataclasses.replace(config, max_text_length=200))

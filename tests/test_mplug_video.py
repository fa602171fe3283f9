"""mPLUG-video: derived widths, the frozen LM, the answer-only loss, scoring, generation (beam search against an
exhaustive search), heads, save/load (frozen LM not copied, strict loading, heads allow-list)."""

import itertools
import json
import logging

import pytest
import torch
from _tiny_models import CORPUS, LM_WIDTH, mplug_config, save_tiny_lm, tokenizer
from safetensors.torch import load_file, save_file

from vlstudy.models.loading import CheckpointError
from vlstudy.models.mplug_video import (
    MATCH_ANSWERS,
    MPLUGVideoConfig,
    MPLUGVideoForClassification,
    MPLUGVideoForContrastive,
    MPLUGVideoForMatching,
    MPLUGVideoModel,
    classification_prompt,
    match_prompt,
    tokenize_prompts,
)
from vlstudy.models.text_lm import PackedTextDataset, TextLMConfig, build_text_lm, load_lm, save_text_lm

LM = TextLMConfig(hidden_size=LM_WIDTH, num_layers=2, num_heads=2, max_positions=96, dropout=0.0)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny LM trained a little on the corpus, so that greedy decoding is not degenerate."""
    torch.manual_seed(0)
    tok = tokenizer()
    lm = build_text_lm(LM, tok)
    blocks = PackedTextDataset(CORPUS * 4, tok, block_size=16).blocks
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    for _ in range(15):
        loss = lm(input_ids=blocks, labels=blocks).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("lm")
    save_text_lm(lm, tok, folder)
    return folder


@pytest.fixture(scope="module")
def config(lm_dir):
    return mplug_config(lm_dir)


@pytest.fixture(scope="module")
def model(config):
    """The classification model (backbone + MLP head)."""
    torch.manual_seed(1)
    return MPLUGVideoForClassification(config).eval()


@pytest.fixture(scope="module")
def matcher(config):
    torch.manual_seed(5)
    return MPLUGVideoForMatching(config).eval()


@pytest.fixture(scope="module")
def contrastive(config):
    torch.manual_seed(6)
    return MPLUGVideoForContrastive(config).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_widths_are_derived_from_the_video_encoder_and_the_lm(model, contrastive, matcher):
    assert model.abstractor.queries.shape[-1] == model.config.video.hidden_size == 32
    assert model.abstractor.proj.out_features == model.lm.config.hidden_size == LM_WIDTH
    assert contrastive.contrastive.vision_proj.in_features == 32
    assert contrastive.contrastive.text_proj.in_features == model.cls_head[1].in_features == LM_WIDTH
    assert matcher.match_head[1].in_features == LM_WIDTH
    assert model.visual_prefix(None, batch_size=3).shape == (3, 4, LM_WIDTH)


def test_lm_is_frozen_counted_and_logged(config, caplog):
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        model = MPLUGVideoModel(config)
    non_lm = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("lm."))
    assert model.num_trainable == non_lm
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert model.trainable_ratio == pytest.approx(non_lm / sum(p.numel() for p in model.parameters()))
    assert f"MPLUGVideoModel: {non_lm} trainable of {model.num_total} parameters " \
           f"({100 * model.trainable_ratio:.2f}%)" in caplog.text
    model.train()
    assert model.training and model.abstractor.training and not any(m.training for m in model.lm.modules())


def test_training_changes_the_video_side_only_and_lowers_the_loss(config, video):
    torch.manual_seed(3)
    model = MPLUGVideoModel(config).train()
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
    relabelled = batch.labels.clone()
    relabelled[0, 1] = batch.input_ids[0, 1]  # un-masking a prompt token is the only way to change the loss
    assert not torch.isclose(model(video, batch.input_ids, batch.attention_mask, relabelled).loss, out.loss)


def test_score_continuations_equals_a_naive_loop(model, video):
    prompts = [classification_prompt("小猫在草地上玩球"), classification_prompt("")]
    candidates = ["宠物", "篮球", "电视剧周边（预告/杂谈）", "猫", ""]  # run in groups of equal length, 0 tokens too
    scores = model.score_continuations(video, prompts, candidates)
    assert scores.shape == (2, 5)
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


def _exhaustive_best(model, video, prompt, max_new_tokens, length_penalty) -> list[int]:
    """The best continuation over every sequence of at most `max_new_tokens` tokens (EOS-terminated, or cut at
    the maximum), scored as beam search scores a finished hypothesis: summed log-prob / length ** penalty."""
    tok = model.tokenizer
    eos, others = tok.eos_token_id, [i for i in range(len(tok)) if i != tok.eos_token_id]
    sequences = [(*body, eos) for n in range(max_new_tokens) for body in itertools.product(others, repeat=n)]
    sequences += list(itertools.product(others, repeat=max_new_tokens))
    prompt_ids = [tok.bos_token_id, *tok(prompt)["input_ids"]]
    ids = torch.tensor([prompt_ids + list(s) + [eos] * (max_new_tokens - len(s)) for s in sequences])  # (S, L)
    with torch.no_grad():
        out = model(video.expand(len(sequences), -1, -1, -1, -1), ids, torch.ones_like(ids))
    logp = out.token_logits.log_softmax(-1).gather(-1, ids[..., None]).squeeze(-1)[:, len(prompt_ids):]  # (S, M)
    lengths = torch.tensor([len(s) for s in sequences])
    summed = (logp * (torch.arange(max_new_tokens) < lengths[:, None])).sum(dim=1)
    scores = summed / lengths.float() ** length_penalty
    best = scores.argsort(descending=True)[:2]
    assert scores[best[0]] - scores[best[1]] > 1e-3  # a unique optimum, so the comparison is meaningful
    return list(sequences[best[0]])


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def test_beam_search_finds_the_exhaustive_optimum_on_a_tiny_vocabulary(tmp_path, video):
    """9 tokens, 3 new tokens: 72 beams keep every live hypothesis, so beam search must return the exhaustive
    optimum of its length-normalised score, for the paper's length penalty 1 and for 0.5. On this model greedy
    decoding and the two penalties disagree, so the comparison tests the beams, the penalty and EOS handling."""
    tok = tokenizer(["是否"], always_include=())
    save_tiny_lm("gpt2", tok, tmp_path / "lm", seed=3, init_std=0.3)
    torch.manual_seed(4)
    model = MPLUGVideoModel(mplug_config(tmp_path / "lm")).eval()
    assert len(tok) == 9
    prompts = ["", "是"]  # different lengths: the batch is left-padded
    greedy = model.generate_ids(video, prompts, max_new_tokens=3).tolist()
    greedy = [_until_eos(row, tok.eos_token_id) for row in greedy]
    found = {}
    for penalty in (1.0, 0.5):
        expected = [_exhaustive_best(model, video[b: b + 1], p, 3, penalty) for b, p in enumerate(prompts)]
        beams = model.generate_ids(video, prompts, num_beams=72, length_penalty=penalty, max_new_tokens=3)
        assert [_until_eos(row, tok.eos_token_id) for row in beams.tolist()] == expected
        assert model.generate(video, prompts, num_beams=72, length_penalty=penalty, max_new_tokens=3) == \
            tok.batch_decode(beams, skip_special_tokens=True)
        found[penalty] = expected
    assert found[1.0] != greedy and found[0.5] != found[1.0]


def test_match_scores_every_pair_with_yes_minus_no(matcher, video):
    texts = ["小猫在玩球", "篮球比赛", "做饭"]
    scores = matcher.match_scores(video, texts, chunk_size=4)  # chunks cut across videos
    assert scores.generative.shape == scores.head.shape == (2, 3)
    for b, k in [(0, 0), (1, 2)]:
        logp = {}
        for answer in MATCH_ANSWERS:
            batch = matcher.tokenize([match_prompt(texts[k])], [answer])
            with torch.no_grad():
                out = matcher(video[b: b + 1], batch.input_ids, batch.attention_mask)
            position = batch.prompt_lengths[0]
            logp[answer] = out.token_logits[0, position].log_softmax(-1)[batch.input_ids[0, position]]
            head = matcher.match_head(out.prompt_state(batch.prompt_lengths))[0]
        torch.testing.assert_close(scores.generative[b, k], logp["是"] - logp["否"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(scores.head[b, k], head[1] - head[0], atol=1e-5, rtol=1e-5)
    losses = matcher.match_loss(video, texts[:2], torch.tensor([True, False]))
    torch.testing.assert_close(losses["loss"], losses["lm_loss"] + losses["match_loss"])


def test_contrastive_mode_trains_projections_not_the_lm(config, video):
    torch.manual_seed(4)
    model = MPLUGVideoForContrastive(config)
    video_feat, text_feat = model.contrastive_features(video, ["小猫", "篮球比赛", "做饭"])
    assert video_feat.shape == (2, 256) and text_feat.shape == (3, 256)
    torch.testing.assert_close(text_feat.norm(dim=-1), torch.ones(3))
    with torch.no_grad():
        model.contrastive.temp.fill_(5.0)
    loss = model.contrastive_loss(video, ["小猫", "篮球比赛"])
    assert model.contrastive.temp.item() == 0.5
    loss.backward()
    assert torch.isfinite(loss)
    assert model.contrastive.vision_proj.weight.grad.abs().sum() > 0
    assert model.contrastive.text_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.lm.parameters())


def test_language_only_uses_the_soft_prompt(model):
    batch = model.tokenize(["小猫", "篮球"], ["玩球", "比赛"])
    out = model(None, batch.input_ids, batch.attention_mask, batch.labels)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.hidden_states[0, :4], out.hidden_states[1, :4])  # same prefix for both


# ---- save / load -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", [MPLUGVideoModel, MPLUGVideoForContrastive, MPLUGVideoForClassification,
                                         MPLUGVideoForMatching])
def test_save_load_round_trip_is_bit_identical_and_leaves_the_lm_out(config, video, tmp_path, model_class):
    torch.manual_seed(6)
    model = model_class(config).eval()
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert saved and not [name for name in saved if name.startswith("lm.")]
    assert json.loads((tmp_path / "config.json").read_text())["lm_path"] == config.lm_path
    loaded = model_class.from_pretrained(tmp_path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.lm.parameters())
    for name, tensor in load_lm(config.lm_path).state_dict().items():  # the LM comes back from lm_path
        assert torch.equal(loaded.lm.state_dict()[name], tensor), name
    batch = model.tokenize(["小猫"], ["玩球"])
    with torch.no_grad():
        assert torch.equal(loaded(video[:1], batch.input_ids, batch.attention_mask).token_logits,
                           model(video[:1], batch.input_ids, batch.attention_mask).token_logits)
    assert loaded.generate(video, ["", ""], max_new_tokens=4) == model.generate(video, ["", ""], max_new_tokens=4)
    if model_class is MPLUGVideoForClassification:
        assert torch.equal(loaded.classify(video, ["小猫"] * 2).head, model.classify(video, ["小猫"] * 2).head)


def test_the_lm_can_be_read_from_another_folder(config, tmp_path):
    model = MPLUGVideoModel(config)
    model.save_pretrained(tmp_path / "model")
    save_tiny_lm("gpt2", model.tokenizer, tmp_path / "other_lm", seed=9)
    loaded = MPLUGVideoModel.from_pretrained(tmp_path / "model", lm_path=str(tmp_path / "other_lm"))
    assert loaded.config.lm_path == str(tmp_path / "other_lm")
    assert torch.equal(loaded.lm.lm_head.weight, load_lm(tmp_path / "other_lm").lm_head.weight)


def test_set_num_frames_resamples_time_embeddings(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = MPLUGVideoForClassification.from_pretrained(tmp_path)
    loaded.set_num_frames(4)
    assert loaded.visual_prefix(torch.randn(1, 4, 3, 32, 32), 1).shape == (1, 4, LM_WIDTH)


def test_a_head_checkpoint_loads_into_another_task_class(matcher, video, tmp_path, caplog):
    """The allow-list: a head this class has and the file lacks is initialised, a head it lacks is dropped; both
    are logged; the backbone is loaded exactly."""
    matcher.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        classifier = MPLUGVideoForClassification.from_pretrained(tmp_path)
    assert "MPLUGVideoForClassification: ['cls_head.0.num_batches_tracked', 'cls_head.0.running_mean'" in caplog.text
    assert "initialised (not in" in caplog.text and "dropped (not used by this class)" in caplog.text
    assert not hasattr(classifier, "match_head") and torch.isfinite(classifier.cls_head[1].weight).all()
    with torch.no_grad():
        assert torch.equal(classifier.visual_prefix(video, 2), matcher.visual_prefix(video, 2))


def test_strict_loading_names_the_tensor_and_the_file(model, config, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    more_queries = MPLUGVideoConfig.from_pretrained(tmp_path)
    more_queries.abstractor.num_queries = 8
    with pytest.raises(CheckpointError, match=rf"^{weights}: tensor 'abstractor.queries' has shape \(1, 4, 32\) "
                                              r"in the file but \(1, 8, 32\) in the model$"):
        MPLUGVideoForClassification.from_pretrained(tmp_path, config=more_queries)
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if k != "abstractor.queries"}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensors \['abstractor.queries'\] "
                                              r"\(in MPLUGVideoForClassification, not in the file\)$"):
        MPLUGVideoForClassification.from_pretrained(tmp_path)
    save_file({**tensors, "extra": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: unexpected tensors \['extra'\] "
                                              r"\(in the file, not in MPLUGVideoModel\)$"):
        MPLUGVideoModel.from_pretrained(tmp_path)
    weights.rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}/pytorch_model.bin: pickled PyTorch weights are not "
                                              r"loaded \(use_safetensors=True\)"):
        MPLUGVideoModel.from_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{weights}: no such file$"):
        MPLUGVideoModel.from_pretrained(tmp_path)


def test_an_lm_saved_as_a_pickle_is_refused(config, tmp_path):
    save_tiny_lm("gpt2", tokenizer(), tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}/pytorch_model.bin: pickled PyTorch weights are not "
                                              r"loaded"):
        MPLUGVideoModel(mplug_config(tmp_path))


def test_an_lm_without_a_folder_cannot_be_saved(tmp_path):
    model = MPLUGVideoModel(MPLUGVideoConfig(video=mplug_config(tmp_path).video, lm=LM, max_text_length=32),
                            tokenizer=tokenizer())
    with pytest.raises(ValueError, match="has no folder: save it with text_lm.save_text_lm and set lm_path"):
        model.save_pretrained(tmp_path)


def test_prefix_plus_text_must_fit_the_lm_positions(lm_dir):
    with pytest.raises(ValueError, match=r"^4 queries \+ max_text_length 200 exceed the LM's 96 positions$"):
        MPLUGVideoModel(mplug_config(lm_dir, max_text_length=200))

"""mPLUG-2 baseline: universal layers shared by video and text, shapes, objectives, generation, save/load, strict
loading, gradient checkpointing."""

import copy
import logging
import math
from collections import Counter

import pytest
import torch
from _tiny_models import backward_nodes
from safetensors.torch import load_file, save_file
from transformers.modeling_layers import GradientCheckpointingLayer

from vlstudy.models.configuration_mplug2 import MPLUG2Config, MPLUG2TextConfig
from vlstudy.models.loading import CheckpointError
from vlstudy.models.mplug2 import (
    MPLUG2ForCaptioning,
    MPLUG2ForClassification,
    MPLUG2ForPretraining,
    MPLUG2ForRetrieval,
    MPLUG2Model,
    _additive,
)
from vlstudy.models.text_lm import train_char_tokenizer
from vlstudy.models.video_encoder import VideoEncoderConfig

TEXTS = ["小猫在草地上玩球", "一个人在厨房里做饭", "篮球比赛", "小狗奔跑"]


def _config(dropout: float = 0.0, **overrides) -> MPLUG2Config:
    """A fresh tiny config (a model fills its derived fields, so tests do not share one)."""
    video = VideoEncoderConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=32, num_layers=1, num_heads=2,
                               dropout=dropout)
    text = MPLUG2TextConfig(num_heads=2, dropout=dropout, max_length=16, num_queries=3)
    return MPLUG2Config(video=video, text=text, **{"contrastive_dim": 16, **overrides})


@pytest.fixture(scope="module")
def tokenizer():
    return train_char_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return MPLUG2ForPretraining(_config(), tokenizer).eval()


@pytest.fixture(scope="module")
def video():
    return torch.randn(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_shapes_and_derived_widths(model, video, tokenizer):
    ids, mask = model.tokenize(TEXTS)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert ids[2].tolist()[:6] == [cls, *tokenizer("篮球比赛")["input_ids"], sep]
    assert model.video_encoder(video).shape == model.encode_video(video).shape == (4, 1 + 4 * 2, 32)
    text = model.encode_text(ids, mask)
    assert text.shape == (4, ids.shape[1], 32)
    assert model.fuse(text, mask, model.encode_video(video)).shape == text.shape
    assert (len(model.text_encoder.encoder.layer), len(model.universal.layers), len(model.fusion),
            len(model.text_decoder.bert.encoder.layer)) == (2, 2, 2, 2)
    assert model.config.text.vocab_size == len(tokenizer) and model.universal.queries.shape == (3, 32)
    video_feat, text_feat = model.features(video, ids, mask)
    assert video_feat.shape == text_feat.shape == (4, 16)


def _grads(model, loss) -> dict[str, torch.Tensor]:
    """d loss / d parameter for every universal-layer parameter (zeros where the loss does not reach it)."""
    params = dict(model.universal.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True, retain_graph=True)
    return {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(params.items(), grads)}


def test_universal_layers_are_the_same_parameters_for_video_and_text(model, video):
    ids, mask = model.tokenize(TEXTS)
    seen = {id(p): [] for p in model.universal.parameters()}
    hooks = [layer.attention.register_forward_hook(lambda m, args, out: seen[id(m.self.query.weight)].append(
        args[0].shape[1])) for layer in model.universal.layers]
    direction = torch.randn(32, generator=torch.Generator().manual_seed(0))  # (a LayerNorm'd norm is constant)
    text_loss = (model.encode_text(ids, mask)[:, 0] @ direction).sum()  # text only: no video anywhere
    video_loss = (model.encode_video(video)[:, 0] @ direction).sum()  # video only: no text anywhere
    for hook in hooks:
        hook.remove()
    # each layer's self-attention module ran on text (L tokens), and on the queries (Q = 3) or video tokens (S = 9)
    first, last = (seen[id(layer.attention.self.query.weight)] for layer in model.universal.layers)
    assert first == [ids.shape[1], 3] and last == [ids.shape[1], 9]
    g_text, g_video = _grads(model, text_loss), _grads(model, video_loss)
    g_both = _grads(model, text_loss + video_loss)
    shared = [n for n in g_text if ".crossattention." not in n and n != "queries" and not n.startswith("norm.")]
    assert len(shared) == 2 * 16  # self-attention (q, k, v, out, LayerNorm) + MLP (in, out, LayerNorm), w + b
    for name in shared:  # both gradients reach the very same parameter, and they add up
        assert g_text[name].abs().sum() > 0 and g_video[name].abs().sum() > 0, name
        torch.testing.assert_close(g_both[name], g_text[name] + g_video[name])
    for name in g_text:  # cross-attention, queries and the video norm serve video only
        if name not in shared:
            assert g_text[name].abs().sum() == 0 and g_video[name].abs().sum() > 0, name


def test_universal_and_fusion_layers_are_bidirectional(model, video):
    ids, mask = model.tokenize(["小猫在草地上玩球", "小猫在草地上玩球"])
    ids[1, 6] = ids[0, 2]  # a late token of the second text only
    hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    universal = model.universal.text(hidden, _additive(mask, hidden.dtype))
    changed = (universal[0, 0] - hidden[0, 0]) - (universal[1, 0] - hidden[1, 0])
    assert changed.abs().max() > 1e-4  # the universal layers' CLS sees a later token
    tokens = model.video_encoder(video[:1]).repeat(2, 1, 1)
    tokens[1, -1] += 1.0  # the last video token only
    out = model.universal.video(tokens)
    assert not torch.allclose(out[0, 0], out[1, 0])  # the video CLS sees it too
    fused = model.fuse(model.encode_text(ids, mask), mask, model.encode_video(video[[0, 0]]))
    other_video = model.fuse(model.encode_text(ids, mask), mask, model.encode_video(video[[1, 1]]))
    assert not torch.allclose(fused[0, 0], fused[1, 0]) and not torch.allclose(fused[0, 0], other_video[0, 0])


@pytest.mark.slow  # ~8 s on a loaded machine
def test_each_objective_falls_over_a_few_steps(tokenizer, video):
    # As for ALPRO, the text CLS hardly depends on the text at initialisation, so VTC stays at chance (log 4) for a
    # seed-dependent number of steps before the pairs separate; VTM first learns the 1:2 prior of positives
    # (log-loss 0.637), then the pairs.
    torch.manual_seed(0)
    model = MPLUG2ForPretraining(_config(), tokenizer).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(3)
    history = []
    for _ in range(60):
        losses = model.pretrain_losses(video, TEXTS, generator)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    trace = {name: [round(h[name], 2) for h in history[::6]] for name in ("vtc", "vtm", "lm")}
    last = {name: sum(h[name] for h in history[-3:]) / 3 for name in trace}
    prior = -(math.log(1 / 3) / 3 + 2 * math.log(2 / 3) / 3)  # 0.637: the log-loss of guessing 1 match in 3
    assert last["vtc"] < 0.1, trace  # the 4 pairs are told apart (chance: log 4 = 1.39)
    assert last["vtm"] < prior - 0.03, trace  # below the prior: matching pairs are recognised
    assert last["lm"] < 0.3 * history[0]["lm"], trace  # the titles are learned


def test_every_trainable_parameter_gets_a_gradient(tokenizer, video):
    """Each task class holds exactly what its loss uses (DDP); captioning freezes the text encoder and fusion."""
    torch.manual_seed(0)
    cases = {MPLUG2ForPretraining: lambda m: m.pretrain_losses(video, TEXTS, torch.Generator().manual_seed(0)),
             MPLUG2ForRetrieval: lambda m: m.retrieval_losses(video, *m.tokenize(TEXTS), torch.Generator()),
             MPLUG2ForCaptioning: lambda m: m.caption_loss(video, TEXTS)}
    for model_class, loss_fn in cases.items():
        model = model_class(_config(), tokenizer).train()
        loss_fn(model)["loss"].backward()
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert {n for n, p in model.named_parameters() if p.grad is not None} == trainable, model_class.__name__
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"text_encoder", "fusion"}


def test_greedy_generation_equals_a_manual_loop(model, video, tokenizer):
    ids = model.generate_ids(video, num_beams=1, max_new_tokens=6)
    with torch.no_grad():
        video_embeds = model.encode_video(video)
        manual = torch.full((4, 1), tokenizer.bos_token_id)
        for _ in range(6):
            logits = model.text_decoder(input_ids=manual, encoder_hidden_states=video_embeds, use_cache=False).logits
            manual = torch.cat([manual, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    for row, expected in zip(ids.tolist(), manual[:, 1:].tolist()):
        stop = expected.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in expected else len(expected)
        assert row[:stop] == expected[:stop]
        assert all(t == tokenizer.pad_token_id for t in row[stop:])
    beams = model.generate(video, num_beams=5, max_new_tokens=6)
    assert len(beams) == 4 and all(isinstance(c, str) for c in beams)
    with pytest.raises(ValueError, match=r"max_new_tokens 16 \+ \[BOS\] exceed the decoder's 16 positions"):
        model.generate_ids(video, max_new_tokens=16)


def test_captioning_learns_to_say_the_caption(tokenizer, video):
    torch.manual_seed(0)
    model = MPLUG2ForCaptioning(_config(), tokenizer).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        model.caption_loss(video[:2], TEXTS[:2])["loss"].backward()
        optimizer.step()
    assert model.eval().generate(video[:2], num_beams=5, max_new_tokens=12) == TEXTS[:2]


def test_classification_follows_the_ablation_switches(tokenizer, video):
    torch.manual_seed(0)
    classifier = MPLUG2ForClassification(_config(), tokenizer).eval()
    ids, mask = classifier.tokenize(TEXTS)
    assert classifier.classify(video, ids, mask).shape == (4, 45)
    torch.testing.assert_close(classifier.classify(video), classifier.cls_head(classifier.encode_video(video)[:, 0]))
    torch.testing.assert_close(classifier.classify(None, ids, mask),
                               classifier.cls_head(classifier.encode_text(ids, mask)[:, 0]))
    with pytest.raises(ValueError, match="classify needs a video, a text, or both"):
        classifier.classify()


def test_save_load_round_trip_is_bit_identical(model, video, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    loaded = MPLUG2ForPretraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ours, theirs = (m.pretrain_losses(video, TEXTS, torch.Generator().manual_seed(0)) for m in (model, loaded))
        for name in ("vtc", "vtm", "lm"):
            assert torch.equal(theirs[name], ours[name]), name
        assert torch.equal(loaded.match_logits(video, *loaded.tokenize(TEXTS)),
                           model.match_logits(video, *model.tokenize(TEXTS)))
    assert torch.equal(loaded.generate_ids(video, num_beams=5, max_new_tokens=6),
                       model.generate_ids(video, num_beams=5, max_new_tokens=6))
    # the decoder's output layer stays tied to its input embeddings
    decoder = loaded.text_decoder
    assert decoder.cls.predictions.decoder.weight is decoder.bert.embeddings.word_embeddings.weight


def test_a_pretraining_checkpoint_loads_into_every_task_class(model, video, tmp_path, caplog):
    model.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        classifier = MPLUG2ForClassification.from_pretrained(tmp_path)
        captioner = MPLUG2ForCaptioning.from_pretrained(tmp_path)
        retrieval = MPLUG2ForRetrieval.from_pretrained(tmp_path)
    assert "MPLUG2ForClassification: ['cls_head.0.bias', 'cls_head.0.weight', 'cls_head.2.bias', " \
           "'cls_head.2.weight'] initialised" in caplog.text
    assert "MPLUG2ForRetrieval: ['text_decoder.bert.embeddings.LayerNorm.bias'" in caplog.text
    with torch.no_grad():
        assert torch.equal(classifier.eval().encode_video(video), model.encode_video(video))
        assert torch.equal(captioner.eval().generate_ids(video, max_new_tokens=5),
                           model.generate_ids(video, max_new_tokens=5))
        assert torch.equal(retrieval.eval().features(video)[0], model.features(video)[0])
    # loading made new parameters: the parts captioning does not use are frozen again
    assert {n.split(".")[0] for n, p in captioner.named_parameters() if not p.requires_grad} == {"text_encoder",
                                                                                                  "fusion"}


def test_strict_loading_names_the_tensor_and_the_file(model, tmp_path):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    wider = copy.deepcopy(MPLUG2Config.from_pretrained(tmp_path))
    wider.text.num_queries = 5
    with pytest.raises(CheckpointError, match=rf"^{weights}: tensor 'universal.queries' has shape \(3, 32\) in the "
                                              r"file but \(5, 32\) in the model$"):
        MPLUG2ForPretraining.from_pretrained(tmp_path, config=wider)
    tensors = load_file(weights)
    save_file({k: v for k, v in tensors.items() if not k.startswith("universal.layers.1.crossattention.")}, weights)
    with pytest.raises(CheckpointError, match=rf"^{weights}: missing tensors \['universal.layers.1.crossattention."):
        MPLUG2ForClassification.from_pretrained(tmp_path)  # a backbone tensor: never allowed
    save_file({**tensors, "universal.extra": torch.zeros(1)}, weights)
    with pytest.raises(CheckpointError, match=r"unexpected tensors \['universal.extra'\] \(in the file, not in "
                                              r"MPLUG2ForPretraining\)"):
        MPLUG2ForPretraining.from_pretrained(tmp_path)


def test_config_errors_are_named(tokenizer):
    with pytest.raises(ValueError, match=r"universal_layers must be >= 2"):
        MPLUG2TextConfig(universal_layers=1)
    config = _config()
    config.text.vocab_size = len(tokenizer) + 1
    with pytest.raises(ValueError, match=rf"^text.vocab_size is {len(tokenizer) + 1} but the tokenizer's is "
                                         rf"{len(tokenizer)}$"):
        MPLUG2Model(config, tokenizer)


VIDEO_BLOCKS = {"video_encoder.timesformer.encoder.layer.0", "universal.layers.0", "universal.layers.1"}
TEXT_BLOCKS = {"text_encoder.encoder.layer.0", "text_encoder.encoder.layer.1"}
FUSION_BLOCKS = {"fusion.0", "fusion.1"}
DECODER_BLOCKS = {"text_decoder.bert.encoder.layer.0", "text_decoder.bert.encoder.layer.1"}
CHECKPOINTED = {  # the loss of each training stage that uses mPLUG-2, and the blocks on its gradient path
    "pretraining": (MPLUG2ForPretraining, lambda m, v: m.pretrain_losses(v, TEXTS, torch.Generator().manual_seed(1)),
                    VIDEO_BLOCKS | TEXT_BLOCKS | FUSION_BLOCKS | DECODER_BLOCKS),
    "retrieval": (MPLUG2ForRetrieval, lambda m, v: m.retrieval_losses(v, *m.tokenize(TEXTS),
                                                                      torch.Generator().manual_seed(1)),
                  VIDEO_BLOCKS | TEXT_BLOCKS | FUSION_BLOCKS),
    "captioning": (MPLUG2ForCaptioning, lambda m, v: m.caption_loss(v, TEXTS), VIDEO_BLOCKS | DECODER_BLOCKS),
    "classification": (MPLUG2ForClassification, lambda m, v: {"loss": torch.nn.functional.cross_entropy(
        m.classify(v, *m.tokenize(TEXTS)), torch.tensor([3, 7, 1, 0]))}, VIDEO_BLOCKS | TEXT_BLOCKS | FUSION_BLOCKS),
}


@pytest.mark.parametrize("stage", sorted(CHECKPOINTED))
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(stage, tokenizer, video):
    model_class, loss_fn, blocks = CHECKPOINTED[stage]
    torch.manual_seed(0)
    model = model_class(_config(dropout=0.1), tokenizer).train()

    def step():
        calls = Counter()
        hooks = [next(layer.children()).register_forward_hook(lambda *_, name=name: calls.update([name]))
                 for name, layer in model.named_modules() if isinstance(layer, GradientCheckpointingLayer)]
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both runs
        loss = loss_fn(model, video)["loss"]
        loss.backward()
        for hook in hooks:
            hook.remove()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, calls

    loss, grads, calls = step()
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    checkpointed_loss, checkpointed_grads, recomputed = step()
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=0)
    assert checkpointed_grads.keys() == grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=0, atol=0, msg=name)
    # every block on the gradient path ran again in the backward pass: the video encoder's, and each BERT part's
    assert {name for name in recomputed if recomputed[name] > calls[name]} == blocks, (calls, recomputed)


def test_the_captioning_task_drives_mplug2_like_mplug_video(model, video, tokenizer):
    from vlstudy.tasks.captioning import (
        CaptioningConfig,
        FinetuneCaptioningParams,
        captioning_loss,
        generate_captions,
    )

    captioner = MPLUG2ForCaptioning(_config(), tokenizer).eval()
    torch.testing.assert_close(captioning_loss(captioner, video, TEXTS)["loss"],
                               captioner.caption_loss(video, TEXTS)["loss"])
    assert captioning_loss(captioner, None, TEXTS)["loss"].item() == 0.0  # a batch of unreadable videos
    config = CaptioningConfig(model="mplug2", num_beams=5, max_new_tokens=6)
    assert generate_captions(captioner, video, config) == captioner.generate(video, num_beams=5, max_new_tokens=6)
    params = FinetuneCaptioningParams(model="mplug2")
    assert params.cell().model == "mplug2" and params.cell().init == "checkpoints/pretrain_mplug2/model"
    with pytest.raises(ValueError, match=r"models.alpro: not a model this task trains \(mplug_video, mplug2\)"):
        FinetuneCaptioningParams(models={"alpro": CaptioningConfig()})


def test_the_look_inside_table_shows_one_module_serving_both_passes(model, video):
    from vlstudy.tasks.inspect import look_inside_captioning, look_inside_mplug2

    model.train()
    steps, universal = look_inside_mplug2(model, video, TEXTS)
    assert model.training and model.universal.layers[0].training  # the helper restores the mode it found
    model.eval()
    assert steps["tensor"].tolist()[:4] == ["(4, 2, 3, 32, 32)", "(4, 9, 32)", "(4, 3, 32)", "(4, 9, 32)"]
    assert universal["same module object"].tolist() == [True, True]
    assert universal["video pass input"].tolist() == ["(4, 3, 32)", "(4, 9, 32)"]  # the queries, then the video
    layer = model.universal.layers[0]
    assert universal.loc[0, "parameters both use"] + universal.loc[0, "video-only parameters (cross-attention)"] == \
        sum(p.numel() for p in layer.parameters())
    caption_steps = look_inside_captioning(model, video, TEXTS)
    assert caption_steps["step"].tolist()[-1] == "LM loss"


def test_rerank_scores_the_top_k_pairs_by_the_matching_head(tokenizer):
    """Retrieval's re-ranking (each video encoded once) gives every top-k pair exactly its `match_logits` score and
    ranks every other pair below them, in its contrastive order."""
    import numpy as np

    from vlstudy.tasks.retrieval import RetrievalConfig, rerank

    torch.manual_seed(0)
    model = MPLUG2ForRetrieval(_config(), tokenizer).eval()
    clips = torch.randn(5, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    texts = [*TEXTS, "小猫"]
    similarity = np.random.default_rng(0).normal(size=(5, 5))  # (texts, videos)
    out = rerank(model, [{"video": c} for c in clips], texts, similarity, RetrievalConfig(rerank_k=2, eval_batch_size=3))
    top = {(t, int(v)) for t in range(5) for v in np.argsort(-similarity[t])[:2]}
    top |= {(int(t), v) for v in range(5) for t in np.argsort(-similarity[:, v])[:2]}
    with torch.no_grad():
        for t, v in top:
            expected = model.match_logits(clips[v:v + 1], *model.tokenize([texts[t]])).item()
            assert out[t, v] == pytest.approx(expected, abs=1e-5), (t, v)
    rest = [(t, v) for t in range(5) for v in range(5) if (t, v) not in top]
    assert max(out[p] for p in rest) < min(out[p] for p in top)
    np.testing.assert_allclose([out[p] - similarity[p] for p in rest], out[rest[0]] - similarity[rest[0]])


def test_the_hard_negatives_are_gathered_with_an_ordered_backward(model, video):
    """``x[indices]``'s backward (IndexBackward) adds repeated indices with atomic adds on a multi-threaded CPU: run-
    to-run float differences (pretrain_mplug2 differed between two fresh processes of one machine from step 4 on).
    index_select's backward adds in order (three fresh runs of the stage's first 20 steps, bit-identical)."""
    nodes = backward_nodes(model.pretrain_losses(video, TEXTS, torch.Generator().manual_seed(0))["loss"])
    assert "IndexSelectBackward0" in nodes and "IndexBackward0" not in nodes

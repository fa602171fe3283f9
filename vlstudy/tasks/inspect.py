"""Look inside a model before training it: one batch through the model, step by step, with every shape.

Each training notebook calls one of these before its run, so a student sees what the model does to a batch:
the video tokens, the abstractor's queries, the LM prefix, the answer-only label mask, the contrastive similarity
matrix and the hard negatives drawn from it. The functions return small tables (pandas) and change nothing: the
model is put in eval mode for the call and restored, and gradients are off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.datasets import VideoDataset, collate_videos
from vlstudy.data.prompts import classification_prompt
from vlstudy.models.losses import multi_positive_contrastive_loss, sample_hard_negatives
from vlstudy.models.mplug2 import MPLUG2Model
from vlstudy.models.prompting import IGNORE_INDEX
from vlstudy.tasks.classification import ClassificationConfig, model_inputs, score_fn

__all__ = [
    "first_batch",
    "label_mask",
    "look_inside_captioning",
    "look_inside_alpro",
    "look_inside_classification",
    "look_inside_mplug2",
    "look_inside_mplug_video",
    "look_inside_multi_positive",
    "look_inside_text_lm",
]


def first_batch(dataset: VideoDataset, size: int = 4) -> dict:
    """The first `size` items of `dataset` collated into one batch."""
    return collate_videos([dataset[i] for i in range(min(size, len(dataset)))])


@contextlib.contextmanager
def _inspecting(model: torch.nn.Module):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.training = training


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(n) for n in t.shape) + ")"


def look_inside_mplug_video(model, video: torch.Tensor, prompts: Sequence[str],
                            answers: Sequence[str] | None) -> pd.DataFrame:
    """The path of one batch through mPLUG-video: pixels → video tokens → abstractor queries → LM prefix → logits.

    Args:
        model: an mPLUG-video model.
        video: (B, T, C, H, W) clips.
        prompts: B prompts ("" for title generation and captioning).
        answers: B answers (the texts the LM loss is taken on), or None.

    Returns:
        One row per step: ``step``, ``tensor`` (its shape with the axis letters of the model files) and ``note``.
    """
    rows = []
    with _inspecting(model):
        tokens = model.video_encoder(video)  # (B, 1 + N*T, D)
        prefix = model.visual_prefix(video, batch_size=video.shape[0])  # (B, Q, D_lm)
        batch = model.tokenize(list(prompts), list(answers) if answers is not None else None)
        out = model(video, batch.input_ids, batch.attention_mask, batch.labels if answers is not None else None)
    b, t = video.shape[:2]
    n = (tokens.shape[1] - 1) // t
    rows.append(("video clips", _shape(video), "B clips of T frames, C×H×W pixels (CLIP-normalised)"))
    rows.append(("TimeSformer tokens", _shape(tokens), f"CLS + N·T = 1 + {n}·{t} patch tokens per clip, width D"))
    rows.append(("abstractor queries → LM prefix", _shape(prefix),
                 f"Q = {prefix.shape[1]} learned queries summarise the {tokens.shape[1]} tokens, projected to the "
                 f"LM width"))
    rows.append(("text tokens", _shape(batch.input_ids), "[BOS] prompt answer [EOS], right-padded"))
    rows.append(("LM input", f"({b}, {prefix.shape[1] + batch.input_ids.shape[1]}, {prefix.shape[2]})",
                 "prefix embeddings first, then the token embeddings: the frozen LM reads the video as words"))
    rows.append(("token logits", _shape(out.token_logits), "row i predicts token i from the prefix and tokens < i"))
    if out.loss is not None:
        rows.append(("LM loss", f"{float(out.loss):.3f}", "token mean over the answer and EOS only"))
    return pd.DataFrame(rows, columns=["step", "tensor", "note"])


def label_mask(model, prompt: str, answer: str) -> pd.DataFrame:
    """Which tokens of one ``[BOS] prompt answer [EOS]`` sequence carry the LM loss (the answer and EOS only): for
    mPLUG-video's frozen LM, or (with an empty prompt) mPLUG-2's text decoder."""
    batch = model.tokenize_captions([answer]) if isinstance(model, MPLUG2Model) else model.tokenize([prompt], [answer])
    ids, labels = batch.input_ids[0].tolist(), batch.labels[0].tolist()
    tokens = model.tokenizer.convert_ids_to_tokens(ids)
    return pd.DataFrame({"token": tokens, "id": ids,
                         "loss on it": ["yes" if label != IGNORE_INDEX else "" for label in labels]}).T


def look_inside_alpro(model, video: torch.Tensor, texts: Sequence[str],
                      generator: torch.Generator | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The path of one batch through the ALPRO-style model, and the hard negatives VTM would train on.

    Returns:
        (steps, negatives): one row per step with its shape; one row per pair with the text's hard-negative video
        and the video's hard-negative text, drawn from the softmax of the similarities (positive masked).
    """
    generator = generator or torch.Generator().manual_seed(0)
    with _inspecting(model):
        ids, mask = model.tokenize(list(texts))
        video_embeds = model.encode_video(video)  # (B, 1 + N, D)
        text_embeds = model.encode_text(ids, mask)  # (B, L, D)
        video_feat, text_feat = model.features(video, ids, mask)  # (B, E) each
        similarity = video_feat @ text_feat.T / model.contrastive.temp  # (B, B)
        fused = model.fuse(text_embeds, mask, video_embeds)  # (B, L, D)
        negative_video = sample_hard_negatives(similarity.T, generator)
        negative_text = sample_hard_negatives(similarity, generator)
    steps = pd.DataFrame([
        ("video clips", _shape(video), "B clips of T frames"),
        ("video tokens", _shape(video_embeds), "CLS + each patch averaged over time (as ALPRO)"),
        ("text tokens", _shape(text_embeds), "[CLS] text [SEP] through the text-only half of BERT"),
        ("VTC features", f"{_shape(video_feat)}, {_shape(text_feat)}", "CLS features → 256-d, L2-normalised"),
        ("similarity / temperature", _shape(similarity), "rows videos, columns texts; the diagonal is positive"),
        ("fused text", _shape(fused), "the fusion half: text self-attends and cross-attends to the video tokens"),
    ], columns=["step", "tensor", "note"])
    negatives = pd.DataFrame({"text": list(texts), "its hard-negative video": negative_video.tolist(),
                              "video's hard-negative text": negative_text.tolist()})
    return steps, negatives


def look_inside_mplug2(model, video: torch.Tensor, texts: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The path of one batch through mPLUG-2, and proof that its universal layers serve video and text alike.

    Returns:
        (steps, universal): one row per step with its shape; one row per universal layer with the inputs its
        self-attention module received on the text pass and on the video pass, whether it was the same module
        object both times, and how many of its parameters both passes use (self-attention and MLP) or only the
        video pass uses (cross-attention).
    """
    calls: list[tuple[str, int, str, int]] = []  # (pass, layer, input shape, id of the module)
    current = ["text"]  # the pass running now
    hooks = [layer.attention.register_forward_hook(
        lambda module, args, out, i=i: calls.append((current[0], i, _shape(args[0]), id(module))))
        for i, layer in enumerate(model.universal.layers)]
    try:
        with _inspecting(model):
            ids, mask = model.tokenize(list(texts))
            text_embeds = model.encode_text(ids, mask)  # (B, L, D)
            current[0] = "video"
            tokens = model.video_encoder(video)  # (B, 1 + N*T, D)
            video_embeds = model.universal.video(tokens)  # (B, 1 + N*T, D)
            fused = model.fuse(text_embeds, mask, video_embeds)  # (B, L, D)
    finally:
        for hook in hooks:
            hook.remove()
    steps = pd.DataFrame([
        ("video clips", _shape(video), "B clips of T frames"),
        ("TimeSformer tokens", _shape(tokens), "CLS + N·T patch tokens"),
        ("universal queries", f"({video.shape[0]}, {model.universal.queries.shape[0]}, {tokens.shape[2]})",
         "Q learned queries read the video tokens (all universal layers but the last)"),
        ("video after the universal layers", _shape(video_embeds), "the video tokens read the queries (last layer)"),
        ("text tokens", _shape(text_embeds), "[CLS] text [SEP] through BERT's text layers, then the universal layers"),
        ("fused text", _shape(fused), "fusion: text self-attends and cross-attends to the video tokens"),
    ], columns=["step", "tensor", "note"])
    rows = []
    for i, layer in enumerate(model.universal.layers):
        text_in = [c for c in calls if c[0] == "text" and c[1] == i]
        video_in = [c for c in calls if c[0] == "video" and c[1] == i]
        video_only = sum(p.numel() for p in layer.crossattention.parameters())
        rows.append({"universal layer": i, "text pass input": text_in[0][2], "video pass input": video_in[0][2],
                     "same module object": text_in[0][3] == video_in[0][3] == id(layer.attention),
                     "parameters both use": sum(p.numel() for p in layer.parameters()) - video_only,
                     "video-only parameters (cross-attention)": video_only})
    return steps, pd.DataFrame(rows)


def look_inside_captioning(model, video: torch.Tensor, captions: Sequence[str]) -> pd.DataFrame:
    """The path of one captioning batch: mPLUG-video's (`look_inside_mplug_video`, empty prompt) or mPLUG-2's
    (video tokens → universal layers → the text decoder reads them while it predicts the caption)."""
    if not isinstance(model, MPLUG2Model):
        return look_inside_mplug_video(model, video, [""] * len(captions), captions)
    with _inspecting(model):
        tokens = model.video_encoder(video)  # (B, 1 + N*T, D)
        video_embeds = model.universal.video(tokens)  # (B, 1 + N*T, D)
        batch = model.tokenize_captions(list(captions))  # (B, L)
        logits = model.text_decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                    encoder_hidden_states=video_embeds).logits  # (B, L, V)
        loss = model.lm_loss(video_embeds, batch)
    return pd.DataFrame([
        ("video clips", _shape(video), "B clips of T frames"),
        ("TimeSformer tokens", _shape(tokens), "CLS + N·T patch tokens"),
        ("video after the universal layers", _shape(video_embeds), "what the decoder's cross-attention reads"),
        ("decoder tokens", _shape(batch.input_ids), "[BOS] caption [EOS], right-padded"),
        ("token logits", _shape(logits), "causal: position i predicts token i + 1 from the tokens <= i and the video"),
        ("LM loss", f"{float(loss):.3f}", "token mean over the caption and EOS"),
    ], columns=["step", "tensor", "note"])


def look_inside_multi_positive(model, video: torch.Tensor,
                               layer_texts: dict[str, Sequence[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One batch through a dual encoder trained against several texts per video (the DeME-style baseline).

    Args:
        model: a model with ``contrastive_features(video, texts)`` and a ``contrastive`` head (mPLUG-video).
        video: (B, T, C, H, W) clips.
        layer_texts: layer → B texts (VideoMind's factual, abstract, intent): P positives per video.

    Returns:
        (steps, similarity): one row per step with its shape or value; the (B, B·P) cosine similarities, rows
        videos, columns ``<video>:<layer>`` (a video's positives are the P columns of its own block).
    """
    layers = list(layer_texts)
    texts = [text for item in zip(*layer_texts.values()) for text in item]  # video by video
    with _inspecting(model):
        video_feat, text_feat = model.contrastive_features(video, texts)  # (B, E), (B*P, E)
        batch, num_pos = video_feat.shape[0], len(layers)
        grouped = text_feat.view(batch, num_pos, -1)  # (B, P, E)
        similarity = video_feat @ text_feat.T  # (B, B*P)
        temp = model.contrastive.temp
        loss = {mode: float(multi_positive_contrastive_loss(video_feat, grouped, temp, positives=mode))
                for mode in ("each", "any")}
    steps = pd.DataFrame([
        ("video clips", _shape(video), "B clips of T frames"),
        ("video features", _shape(video_feat), "the video CLS projected to E dims, unit length"),
        ("layer texts → features", _shape(grouped),
         f"P = {num_pos} texts per video ({', '.join(layers)}): the frozen LM's state at EOS, projected, unit length"),
        ("similarity / temperature", f"({batch}, {batch * num_pos})",
         f"every video against every text; temperature {float(temp):.3f}"),
        ("loss, positives='each'", f"{loss['each']:.3f}",
         f"every layer must rank high; its video→text half is >= log P = {np.log(num_pos):.3f}"),
        ("loss, positives='any'", f"{loss['any']:.3f}", "one layer ranking high suffices (MIL-NCE)"),
    ], columns=["step", "tensor", "note"])
    columns = [f"{j}:{layer}" for j in range(batch) for layer in layers]
    table = pd.DataFrame(similarity.float().cpu().numpy().round(3), columns=columns,
                         index=pd.Index([f"video {i}" for i in range(batch)], name="video"))
    return steps, table


def look_inside_text_lm(tokenizer, block: torch.Tensor, shown: int = 80) -> pd.DataFrame:
    """The first `shown` tokens of one packed training block: pages stay whole, texts joined by [EOS] [BOS]."""
    ids = block[:shown].tolist()
    return pd.DataFrame({"token": tokenizer.convert_ids_to_tokens(ids), "id": ids}).T


def look_inside_classification(model, config: ClassificationConfig, batch: dict) -> pd.DataFrame:
    """What the model of a classification cell reads for each item of `batch`, and its current top class."""
    video, titles = model_inputs(config.modality, batch)
    with _inspecting(model):
        scores = score_fn(config)(model, batch)
    main = "generative" if "generative" in scores else "head"
    described = {"generative": "summed log-likelihood of each class name", "head": "head logits"}[main]
    return pd.DataFrame([{
        "video": "none" if video is None else _shape(video[i]),
        "text the model reads": classification_prompt(title) if config.model == "mplug_video" else title,
        "true class": CLASS_NAMES[int(batch["label"][i])],
        "top class now": CLASS_NAMES[int(scores[main][i].argmax())],
        "scores": f"{scores[main].shape[1]} per item: {described}"} for i, title in enumerate(titles)])

"""mPLUG-2-style baseline: TimeSformer and BERT, universal layers shared by both modalities, fusion, text decoder.

mPLUG-2 (Xu et al., ICML 2023, "A Modularized Multi-modal Foundation Model") is the second encoder baseline of
Youku-mPLUG's Tables 4 and 5 (Xu et al. 2023, Sec. 5.2), best there on retrieval, "possibly due to the
incorporation of universal layers that remove modality differences and generate superior uni-modal
representations". Reference: X-PLUG/mPLUG-2 (``models/modeling_mplug2.py``: ``BertLayer`` in ``mode="v_module"``,
``FusionLayer``; ``models/model_video_caption_mplug.py``). Parts, all at the video encoder's width D:

- video encoder: the kit's TimeSformer (`VideoEncoderModel`; the official one is a CLIP ViT with temporal layers);
- text encoder: BERT's embeddings and its first ``text.text_layers`` layers;
- `UniversalLayers`: the last layers of the official text encoder, through which video passes too. Their
  self-attention and MLP serve both modalities (the very same parameters: modality collaboration); their
  cross-attention serves video only. Text simply continues through them. Video follows ``mode="v_module"``::

      q = queries                                      (Q, D) learnable
      for layer in layers[:-1]: q = layer(q, cross=v)  the queries read the video tokens v
      v = LayerNorm(v + layers[-1](v, cross=q))        the video tokens read the queries (residual, official)

- fusion: text self-attends (bidirectionally) and cross-attends to the video tokens (the official ``FusionLayer``
  without its ``stride_layer`` variant, which is off in the released configs);
- text decoder: causal BERT with cross-attention to the video tokens (official ``BertPrefixModel``), for title
  generation in pre-training and for captioning; beam search through transformers' ``generate``.

Classes (a backbone and thin task heads, one checkpoint format, see `StrictPreTrainedModel`):

- `MPLUG2Model`: the backbone (video encoder, text encoder, universal layers, fusion).
- `MPLUG2ForRetrieval`: + VTC (video CLS and text CLS after the universal layers → 256-d, InfoNCE) and VTM (an ITM
  head on the fused CLS, one hard negative each way, `vlstudy.models.losses.sample_hard_negatives`), as ALPRO.
- `MPLUG2ForPretraining`: + the text decoder: VTC + VTM + captioning LM loss of the title (no MLM here).
- `MPLUG2ForCaptioning`: the text decoder alone; the text encoder and fusion, unused by captioning, are frozen
  (so every trainable parameter gets a gradient, as DDP expects).
- `MPLUG2ForClassification`: an MLP on the fused CLS; the video CLS alone (vision only) or the text CLS alone
  (language only) for the modality ablation.

transformers builds BERT cross-attention only in decoder mode, which makes self-attention causal; `_bert_layers`
makes the universal and fusion layers bidirectional again (as ALPRO's fusion layers). The decoder's generation
needs an explicit encoder-decoder cache (transformers 5.23 gives a ``BertLMHeadModel`` with cross-attention a
plain ``DynamicCache`` otherwise, and fails).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn
from transformers import BertConfig, BertLMHeadModel, BertModel, DynamicCache, EncoderDecoderCache
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.models.bert_text import BertTextMixin, DualEncoderMixin
from vlstudy.models.configuration_mplug2 import MPLUG2Config, MPLUG2TextConfig
from vlstudy.models.heads import ContrastiveHead, MLPHead
from vlstudy.models.loading import StrictPreTrainedModel
from vlstudy.models.losses import sample_hard_negatives
from vlstudy.models.prompting import IGNORE_INDEX, TextBatch, tokenize_prompts
from vlstudy.models.video_encoder import VideoEncoderMixin, VideoEncoderModel

__all__ = [
    "MPLUG2Config",
    "MPLUG2ForCaptioning",
    "MPLUG2ForClassification",
    "MPLUG2ForPretraining",
    "MPLUG2ForRetrieval",
    "MPLUG2Model",
    "MPLUG2TextConfig",
    "UniversalLayers",
]

logger = logging.getLogger("vlstudy.models")



def _bert_layers(config: BertConfig) -> nn.ModuleList:
    """`config.num_hidden_layers` BERT layers (built inside ``BertModel`` for BERT's initialisation), with
    bidirectional self-attention even when built with cross-attention (decoder mode; see the module docstring)."""
    layers = BertModel(config, add_pooling_layer=False).encoder.layer
    for layer in layers:
        layer.attention.self.is_causal = False
    return layers


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) 1/0 padding mask → (B, 1, 1, L) additive float mask (0 on tokens, the dtype's minimum on padding)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class UniversalLayers(nn.Module):
    """The layers both modalities pass through (see the module docstring for the video path).

    Args:
        config: the model; ``text.universal_layers`` layers and ``text.num_queries`` queries at its width.
    """

    def __init__(self, config: MPLUG2Config) -> None:
        super().__init__()
        self.layers = _bert_layers(config.bert(config.text.universal_layers, cross_attention=True))
        self.queries = nn.Parameter(torch.empty(config.text.num_queries, config.width))
        self.norm = nn.LayerNorm(config.width, eps=1e-12)  # the official visn_emb_norm
        self.dropout = nn.Dropout(config.text.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation of the queries (normal, std 0.02) and a fresh norm; the layers keep BERT's."""
        nn.init.normal_(self.queries, std=0.02)
        self.norm.reset_parameters()

    def text(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) text states and (B, 1, 1, L) additive mask → (B, L, D): self-attention + MLP per layer."""
        for layer in self.layers:
            hidden = layer(hidden, mask)  # (B, L, D); cross-attention skipped without encoder states
        return hidden

    def video(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S, D) video tokens → (B, S, D): the queries read them, then they read the queries."""
        queries = repeat(self.queries, "q d -> b q d", b=tokens.shape[0])  # (B, Q, D)
        for layer in self.layers[:-1]:
            queries = layer(queries, None, tokens)  # (B, Q, D)
        update = self.layers[-1](tokens, None, queries)  # (B, S, D)
        return self.dropout(self.norm(tokens + update))  # (B, S, D)


class MPLUG2PreTrainedModel(VideoEncoderMixin, StrictPreTrainedModel):
    config_class = MPLUG2Config
    base_model_prefix = "mplug2"
    main_input_name = "video"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    family_heads = ("contrastive", "itm_head", "cls_head", "text_decoder")

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation of the heads; the configured temperature; BERT's of the queries. (The
        video encoder and the BERT parts initialise their own when built; here only what a checkpoint lacks is.)"""
        if isinstance(module, (ContrastiveHead, UniversalLayers, nn.Linear, nn.LayerNorm)):
            module.reset_parameters()


class MPLUG2Model(BertTextMixin, MPLUG2PreTrainedModel):
    """Video encoder + BERT text encoder + universal layers + fusion layers.

    Args:
        config: sizes; widths are derived from the video encoder, the vocabulary from `tokenizer`.
        tokenizer: a tokenizer with [CLS], [SEP], [PAD], [BOS] and [EOS] tokens (`text_lm.train_char_tokenizer`).
    """

    def __init__(self, config: MPLUG2Config, tokenizer: PreTrainedTokenizerBase) -> None:
        for name in ("cls_token_id", "sep_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"mPLUG-2 needs a tokenizer with a {name.removesuffix('_id')}")
        for name, value in (("vocab_size", len(tokenizer)), ("pad_token_id", tokenizer.pad_token_id)):
            if getattr(config.text, name) not in (None, value):
                raise ValueError(f"text.{name} is {getattr(config.text, name)} but the tokenizer's is {value}")
            setattr(config.text, name, value)
        super().__init__(config)
        self.tokenizer = tokenizer
        self.video_encoder = VideoEncoderModel(config.video)
        self.text_encoder = BertModel(config.bert(config.text.text_layers, False), add_pooling_layer=False)
        self.universal = UniversalLayers(config)
        self.fusion = _bert_layers(config.bert(config.text.fusion_layers, cross_attention=True))
        self._build_heads(config.width)
        self.post_init()

    def _build_heads(self, width: int) -> None:
        """Task classes add their heads here (before ``post_init``)."""

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → (B, S, D), S = 1 + N*T: TimeSformer tokens after the universal layers, CLS first."""
        return self.universal.video(self.video_encoder(video))  # (B, 1 + N*T, D)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids → (B, L, D): BERT's text layers, then the universal layers."""
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                   use_cache=False).last_hidden_state  # (B, L, D)
        return self.universal.text(hidden, _additive(attention_mask, hidden.dtype))  # (B, L, D)

    def fuse(self, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
             video_embeds: torch.Tensor) -> torch.Tensor:
        """Text tokens (B, L, D), padding `attention_mask` (B, L) masked, self-attend and cross-attend to video
        tokens (B, S, D). Returns (B, L, D); position 0 is the fused CLS."""
        mask, hidden = _additive(attention_mask, text_embeds.dtype), text_embeds
        for layer in self.fusion:
            hidden = layer(hidden, mask, video_embeds)  # (B, L, D)
        return hidden


def _freeze(model: nn.Module, parts: Sequence[str]) -> None:
    """Freeze the named submodules (no gradient would reach them) and log the trainable count."""
    for name in parts:
        model.get_submodule(name).requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("%s: %s frozen (unused by this task); %d trainable of %d parameters", type(model).__name__,
                ", ".join(parts), trainable, sum(p.numel() for p in model.parameters()))


class TextDecoderMixin:
    """The text decoder of mPLUG-2: causal BERT reading the video tokens; LM loss and generation."""

    config: MPLUG2Config
    tokenizer: PreTrainedTokenizerBase
    text_decoder: BertLMHeadModel

    def _build_heads(self, width: int) -> None:
        super()._build_heads(width)
        self.text_decoder = BertLMHeadModel(self.config.bert(self.config.text.decoder_layers, cross_attention=True))

    def tokenize_captions(self, captions: Sequence[str]) -> TextBatch:
        """``[BOS] caption [EOS]`` (B, L) for the decoder, labels on the caption and EOS, on the model's device."""
        batch = tokenize_prompts(self.tokenizer, [""] * len(captions), captions, self.config.text.max_length)
        return batch.to(self.device)

    def lm_loss(self, video_embeds: torch.Tensor, batch: TextBatch) -> torch.Tensor:
        """Token-mean LM loss of `batch` (from `tokenize_captions`) given the video tokens (B, S, D)."""
        logits = self.text_decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                   encoder_hidden_states=video_embeds, use_cache=False).logits  # (B, L, V)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten(),
                               ignore_index=IGNORE_INDEX)  # position i predicts token i + 1

    def caption_loss(self, video: torch.Tensor, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """``{"loss"}``: the LM loss of B captions given their videos (B, T, C, H, W)."""
        return {"loss": self.lm_loss(self.encode_video(video), self.tokenize_captions(captions))}

    @torch.no_grad()
    def generate_ids(self, video: torch.Tensor, num_beams: int = 1, length_penalty: float = 1.0,
                     max_new_tokens: int = 30) -> torch.Tensor:
        """(B, <= max_new_tokens) token ids generated after [BOS] for each video, EOS included, then padding
        (1 beam = greedy; the paper: 5 beams, length penalty 1)."""
        if 1 + max_new_tokens > self.config.text.max_length:
            raise ValueError(f"max_new_tokens {max_new_tokens} + [BOS] exceed the decoder's "
                             f"{self.config.text.max_length} positions (text.max_length)")
        video_embeds = self.encode_video(video)  # (B, S, D)
        tok, decoder_config = self.tokenizer, self.text_decoder.config
        start = torch.full((video.shape[0], 1), tok.bos_token_id, dtype=torch.long, device=self.device)  # (B, 1)
        cache = EncoderDecoderCache(DynamicCache(config=decoder_config), DynamicCache(config=decoder_config))
        out = self.text_decoder.generate(
            input_ids=start, encoder_hidden_states=video_embeds, past_key_values=cache, max_new_tokens=max_new_tokens,
            num_beams=num_beams, length_penalty=length_penalty, do_sample=False, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id)  # (B, 1 + new)
        return out[:, 1:]

    def generate(self, video: torch.Tensor, num_beams: int = 1, length_penalty: float = 1.0,
                 max_new_tokens: int = 30) -> list[str]:
        """`generate_ids` decoded: B strings, special tokens removed."""
        ids = self.generate_ids(video, num_beams, length_penalty, max_new_tokens)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)


class MPLUG2ForRetrieval(DualEncoderMixin, MPLUG2Model):
    """The backbone + VTC projections and the VTM (ITM) head: retrieval (contrastive scores, matching re-rank)."""

    task_heads = ("contrastive", "itm_head")

    def _build_heads(self, width: int) -> None:
        super()._build_heads(width)
        self.contrastive = ContrastiveHead(width, width, self.config.contrastive_dim, self.config.temperature)
        self.itm_head = nn.Linear(width, 2)

    def _vtc_vtm(self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
                 generator: torch.Generator) -> dict[str, torch.Tensor]:
        """VTC on the CLS features of B aligned pairs, then VTM on 3B pairs: the B positives, each text with a
        hard-negative video and each video with a hard-negative text (drawn by `generator`, a CPU generator)."""
        self.contrastive.clamp_temperature()
        video_feat = self.contrastive.project_video(video_embeds[:, 0])  # (B, E)
        text_feat = self.contrastive.project_text(text_embeds[:, 0])  # (B, E)
        vtc = self.contrastive.loss(video_feat, text_feat)
        similarity = video_feat @ text_feat.T / self.contrastive.temp  # (B, B): rows videos, columns texts
        video_for_text = sample_hard_negatives(similarity.T, generator)  # (B,)
        text_for_video = sample_hard_negatives(similarity, generator)  # (B,)
        # index_select, not x[indices]: the backward of advanced indexing accumulates repeated indices with atomic
        # adds on a multi-threaded CPU (run-to-run float differences); index_select's (index_add_) is ordered.
        texts = torch.cat([text_embeds, text_embeds, text_embeds.index_select(0, text_for_video)])  # (3B, L, D)
        masks = torch.cat([attention_mask, attention_mask, attention_mask.index_select(0, text_for_video)])  # (3B, L)
        videos = torch.cat([video_embeds, video_embeds.index_select(0, video_for_text), video_embeds])  # (3B, S, D)
        logits = self.itm_head(self.fuse(texts, masks, videos)[:, 0])  # (3B, 2)
        size = video_embeds.shape[0]
        is_match = torch.cat([torch.ones(size), torch.zeros(2 * size)]).long().to(logits.device)  # (3B,)
        vtm = F.cross_entropy(logits, is_match)
        return {"loss": vtc + vtm, "vtc": vtc, "vtm": vtm}

    def retrieval_losses(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``{"loss": vtc + vtm, "vtc", "vtm"}`` on B aligned pairs: video (B, T, C, H, W), text (B, L) from
        `tokenize`; `generator` (CPU) draws the hard negatives."""
        return self._vtc_vtm(self.encode_video(video), self.encode_text(input_ids, attention_mask), attention_mask,
                             generator)

    def match_logits(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """ITM score of aligned pairs: (B,) logit(match) − logit(no match)."""
        fused_cls = self.fuse(self.encode_text(input_ids, attention_mask), attention_mask,
                              self.encode_video(video))[:, 0]  # (B, D)
        logits = self.itm_head(fused_cls)  # (B, 2)
        return logits[:, 1] - logits[:, 0]


class MPLUG2ForPretraining(TextDecoderMixin, MPLUG2ForRetrieval):
    """The backbone + VTC, VTM and the text decoder: pre-training on (video, title) pairs."""

    task_heads = ("contrastive", "itm_head", "text_decoder")

    def pretrain_losses(self, video: torch.Tensor, titles: Sequence[str],
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``{"loss": vtc + vtm + lm, "vtc", "vtm", "lm"}`` on B aligned (video, title) pairs: one pass of the
        video through the encoder and universal layers serves all three objectives."""
        video_embeds = self.encode_video(video)  # (B, S, D)
        input_ids, attention_mask = self.tokenize(titles)  # (B, L)
        losses = self._vtc_vtm(video_embeds, self.encode_text(input_ids, attention_mask), attention_mask, generator)
        lm = self.lm_loss(video_embeds, self.tokenize_captions(titles))
        return {**losses, "loss": losses["loss"] + lm, "lm": lm}


class MPLUG2ForCaptioning(TextDecoderMixin, MPLUG2Model):
    """The video path (encoder, universal layers) + the text decoder; text encoder and fusion frozen (unused)."""

    task_heads = ("text_decoder",)
    unused = ("text_encoder", "fusion")

    def __init__(self, config: MPLUG2Config, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__(config, tokenizer)
        _freeze(self, self.unused)

    @classmethod
    def from_pretrained(cls, directory: str | Path, *args: Any, **kwargs: Any) -> MPLUG2ForCaptioning:
        """`StrictPreTrainedModel.from_pretrained`, then the unused parts frozen again (loading made new
        parameters of them)."""
        model = super().from_pretrained(directory, *args, **kwargs)
        _freeze(model, cls.unused)
        return model


class MPLUG2ForClassification(MPLUG2Model):
    """The backbone + an MLP classifier on the fused CLS (the video CLS or the text CLS in the ablation)."""

    task_heads = ("cls_head",)

    def _build_heads(self, width: int) -> None:
        super()._build_heads(width)
        self.cls_head = MLPHead(width, self.config.num_classes)

    def classify(self, video: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Category logits (B, num_classes) from the fused CLS; from the video CLS when there is no text (vision
        only), from the text CLS when there is no video (language only), both after the universal layers."""
        if video is None and input_ids is None:
            raise ValueError("classify needs a video, a text, or both")
        if input_ids is None:
            pooled = self.encode_video(video)[:, 0]
        elif video is None:
            pooled = self.encode_text(input_ids, attention_mask)[:, 0]
        else:
            pooled = self.fuse(self.encode_text(input_ids, attention_mask), attention_mask,
                               self.encode_video(video))[:, 0]
        return self.cls_head(pooled)  # (B, C)

"""ALPRO-style baseline: TimeSformer video encoder, BERT text encoder, fusion layers from the middle.

ALPRO (Li et al., CVPR 2022, "Align and Prompt") is the encoder baseline of Youku-mPLUG's tables (Xu et al.
2023, Sec. 5). Reference: the ALPRO code shipped with X-PLUG/Youku-mPLUG (``models/alpro.py``), itself from
salesforce/ALPRO. Classes (a backbone and thin task heads, one checkpoint format, see `StrictPreTrainedModel`):

- `ALPROModel`: the backbone. The text side is BERT split in two: the first half of its layers are text-only, the
  second half ("fusion from the middle") add cross-attention to the video tokens. The reference fuses by
  concatenating text and video tokens; cross-attention fusion is what ALBEF/BLIP-style models and this study's
  brief use. Video tokens are the TimeSformer CLS plus the patch tokens averaged over time, as in the reference.
- `ALPROForPretraining`: the three objectives of the official Chinese ALPRO (``ALPRO_Pretrain.forward``, summed
  with equal weights): VTC, video-text contrastive (CLS features → 256-d, L2-normalised, InfoNCE both ways over
  every process's features, learnable temperature clamped to [0.001, 0.5]); VTM, video-text matching (an ITM head
  on the fused CLS; each text gets one hard-negative video and each video one hard-negative text, sampled from the
  softmax of the in-batch similarities with the positive masked out); MLM, masked language modelling on the FUSED
  text (15 % of the tokens selected, `vlstudy.models.losses.mask_tokens`; the text-only half reads the corrupted
  text, the fusion half adds the video, and an MLM head predicts the selected tokens: BERT's ``BertOnlyMLMHead``,
  the official ``text_encoder.cls``, its decoder tied to the word embeddings as ``BertForMaskedLM`` ties them).
  The MLM head is a task head: a checkpoint without it still loads (the head is then initialised).
- `ALPROForClassification`: an MLP on the fused CLS; the video CLS without text (vision only), the text CLS without
  video (language only) for the modality ablation.

transformers builds BERT cross-attention only in decoder mode (``is_decoder=True``), which also makes the
self-attention causal. `_bidirectional_fusion_encoder` flips the self-attention back to bidirectional after
construction (``config.is_decoder=False`` and every ``attention.self.is_causal=False``); the layers keep their
own ``is_decoder`` flag, which is what switches their cross-attention on. A test checks both.

The vocabulary is the tokenizer's: ``text.vocab_size`` and ``text.pad_token_id`` are derived from the tokenizer
given to a new model, and the tokenizer is saved with the weights (``tokenizer/``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import reduce
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import BertConfig, BertModel, PreTrainedConfig
from transformers.models.bert.modeling_bert import BertEncoder, BertLMPredictionHead, BertOnlyMLMHead
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.config import derived
from vlstudy.models.bert_text import BertTextMixin, DualEncoderMixin
from vlstudy.models.heads import ContrastiveHead, MLPHead
from vlstudy.models.loading import StrictPreTrainedModel
from vlstudy.models.losses import mask_tokens, masked_lm_loss, sample_hard_negatives
from vlstudy.models.video_encoder import VideoEncoderConfig, VideoEncoderMixin, VideoEncoderModel

__all__ = ["TextEncoderConfig", "ALPROConfig", "ALPROModel", "ALPROForPretraining", "ALPROForClassification",
           "OBJECTIVES"]

OBJECTIVES = ("vtc", "vtm", "mlm")  # ALPRO's pre-training losses (official Chinese ALPRO: MLM + VTC + VTM)



@strict
class TextEncoderConfig(PreTrainedConfig):
    """BERT text + fusion encoder. Its width is not a field: it is the video encoder's.

    Attributes:
        num_layers: BERT layers in all; the first half is text-only, the rest are fusion layers.
        num_heads: attention heads.
        mlp_ratio: intermediate width / width.
        dropout: hidden and attention dropout.
        max_length: longest text, [CLS] and [SEP] included.
        vocab_size, pad_token_id: derived from the tokenizer.
    """

    model_type = "vlstudy_alpro_text"

    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_length: int = 64
    vocab_size: int | None = derived(None)
    pad_token_id: int | None = derived(None)

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 (text-only and fusion halves), got {self.num_layers}")
        if self.max_length < 3:
            raise ValueError(f"max_length must leave room for [CLS] text [SEP], got {self.max_length}")


@strict
class ALPROConfig(PreTrainedConfig):
    """The ALPRO baseline. Widths are derived: text width = video width; the vocabulary is the tokenizer's.

    Attributes:
        video: TimeSformer size (``video.pretrained_path``: a CLIP / ViT / TimeSformer folder to start from).
        text: BERT size.
        contrastive_dim: VTC feature size.
        temperature: initial VTC temperature (learnable, clamped to [0.001, 0.5]).
        mlm_probability: share of text tokens MLM selects (official ``mlm_probability``: 0.15).
        tie_word_embeddings: the MLM decoder shares the word embeddings (as in BERT and the official ALPRO).
        num_classes: classification head outputs (45 Youku-mPLUG categories).
    """

    model_type = "vlstudy_alpro"
    sub_configs_defaults = {"video": VideoEncoderConfig, "text": TextEncoderConfig}

    video: dict | PreTrainedConfig | None = None
    text: dict | PreTrainedConfig | None = None
    contrastive_dim: int = 256
    temperature: float = 0.07
    mlm_probability: float = 0.15
    tie_word_embeddings: bool = True
    num_classes: int = 45

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.video.hidden_size % self.text.num_heads:
            raise ValueError(f"width {self.video.hidden_size} is not a multiple of text.num_heads "
                             f"{self.text.num_heads}")

    @property
    def num_text_layers(self) -> int:
        return self.text.num_layers // 2

    @property
    def num_fusion_layers(self) -> int:
        return self.text.num_layers - self.num_text_layers


def _bert_config(config: ALPROConfig, num_layers: int, cross_attention: bool) -> BertConfig:
    width = config.video.hidden_size
    return BertConfig(
        vocab_size=config.text.vocab_size, hidden_size=width, num_hidden_layers=num_layers,
        num_attention_heads=config.text.num_heads, intermediate_size=int(width * config.text.mlp_ratio),
        hidden_dropout_prob=config.text.dropout, attention_probs_dropout_prob=config.text.dropout,
        max_position_embeddings=config.text.max_length, pad_token_id=config.text.pad_token_id,
        is_decoder=cross_attention, add_cross_attention=cross_attention)


def _bidirectional_fusion_encoder(config: BertConfig) -> BertEncoder:
    """BERT layers with cross-attention to video tokens and bidirectional self-attention (see module docstring)."""
    encoder = BertModel(config, add_pooling_layer=False).encoder  # built inside BertModel for BERT's weight init
    config.is_decoder = False
    for layer in encoder.layer:
        layer.attention.self.is_causal = False
    return encoder


class ALPROPreTrainedModel(VideoEncoderMixin, StrictPreTrainedModel):
    config_class = ALPROConfig
    base_model_prefix = "alpro"
    main_input_name = "video"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    family_heads = ("contrastive", "itm_head", "mlm_head", "cls_head")

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation of the heads; the configured temperature; a zero MLM output bias. (The
        video encoder and BERT, fusion layers included, initialise their own when built; here only a head missing
        from a checkpoint is. The MLM decoder is tied to the word embeddings after this.)"""
        if isinstance(module, (ContrastiveHead, nn.Linear, nn.LayerNorm)):
            module.reset_parameters()
        elif isinstance(module, BertLMPredictionHead):
            nn.init.zeros_(module.bias)


class ALPROModel(BertTextMixin, ALPROPreTrainedModel):
    """Video encoder + BERT text encoder + fusion layers.

    Args:
        config: sizes; widths are derived from the video encoder, the vocabulary from `tokenizer`.
        tokenizer: a tokenizer with [CLS], [SEP] and [PAD] tokens (e.g. `text_lm.train_char_tokenizer`).
    """

    def __init__(self, config: ALPROConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"ALPRO needs a tokenizer with a {name.removesuffix('_id')}")
        for name, value in (("vocab_size", len(tokenizer)), ("pad_token_id", tokenizer.pad_token_id)):
            if getattr(config.text, name) not in (None, value):
                raise ValueError(f"text.{name} is {getattr(config.text, name)} but the tokenizer's is {value}")
            setattr(config.text, name, value)
        super().__init__(config)
        self.tokenizer = tokenizer
        self.video_encoder = VideoEncoderModel(config.video)
        self.text_encoder = BertModel(_bert_config(config, config.num_text_layers, False), add_pooling_layer=False)
        self.fusion_encoder = _bidirectional_fusion_encoder(_bert_config(config, config.num_fusion_layers, True))
        self._build_heads(config.video.hidden_size)
        self.post_init()

    def _build_heads(self, width: int) -> None:
        """Task classes add their heads here (before ``post_init``)."""

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → (B, 1 + N, D): the CLS token, then each patch averaged over time (as ALPRO)."""
        tokens = self.video_encoder(video)  # (B, 1 + N*T, D)
        patches = reduce(tokens[:, 1:], "b (n t) d -> b n d", "mean", t=video.shape[1])  # (B, N, D)
        return torch.cat([tokens[:, :1], patches], dim=1)  # (B, 1 + N, D)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text-only half of BERT: (B, L) ids → (B, L, D)."""
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def fuse(self, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
             video_embeds: torch.Tensor) -> torch.Tensor:
        """Fusion half: text tokens (B, L, D) self-attend (bidirectionally, padding `attention_mask` (B, L) masked)
        and cross-attend to video tokens (B, 1 + N, D). Returns (B, L, D); position 0 is the fused CLS."""
        dtype = text_embeds.dtype
        additive = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # (B, 1, 1, L)
        return self.fusion_encoder(text_embeds, attention_mask=additive,
                                   encoder_hidden_states=video_embeds).last_hidden_state


class ALPROForPretraining(DualEncoderMixin, ALPROModel):
    """The backbone + VTC projections, the VTM (ITM) head and the MLM head: pre-training and retrieval."""

    task_heads = ("contrastive", "itm_head", "mlm_head")
    _tied_weights_keys = {"mlm_head.predictions.decoder.weight": "text_encoder.embeddings.word_embeddings.weight",
                          "mlm_head.predictions.decoder.bias": "mlm_head.predictions.bias"}  # as BertForMaskedLM

    def _build_heads(self, width: int) -> None:
        if self.tokenizer.mask_token_id is None:
            raise ValueError("ALPRO pre-training (MLM) needs a tokenizer with a mask token")
        super()._build_heads(width)
        self.contrastive = ContrastiveHead(width, width, self.config.contrastive_dim, self.config.temperature)
        self.itm_head = nn.Linear(width, 2)
        self.mlm_head = BertOnlyMLMHead(self.text_encoder.config)

    def get_output_embeddings(self) -> nn.Linear:
        return self.mlm_head.predictions.decoder

    def pretrain_losses(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        generator: torch.Generator, objectives: tuple[str, ...] = OBJECTIVES) -> dict[str, torch.Tensor]:
        """``{"loss": the sum, and each objective's term}`` on B aligned pairs: video (B, T, C, H, W), text (B, L)
        from `tokenize`; `generator` (CPU) draws the hard negatives, then the MLM masking. VTM needs VTC's
        similarities, so ``"vtm"`` implies computing (not counting) VTC; retrieval fine-tunes with VTC + VTM only
        (official ``ALPRO_Retrieval``)."""
        unknown = set(objectives) - set(OBJECTIVES)
        if unknown or not objectives:
            raise ValueError(f"objectives must be a non-empty subset of {OBJECTIVES}, got {objectives}")
        self.contrastive.clamp_temperature()
        video_embeds = self.encode_video(video)  # (B, 1 + N, D)
        terms = {}
        if "vtc" in objectives or "vtm" in objectives:
            text_embeds = self.encode_text(input_ids, attention_mask)  # (B, L, D)
            video_feat = self.contrastive.project_video(video_embeds[:, 0])  # (B, E)
            text_feat = self.contrastive.project_text(text_embeds[:, 0])  # (B, E)
            if "vtc" in objectives:
                terms["vtc"] = self.contrastive.loss(video_feat, text_feat)
            if "vtm" in objectives:
                similarity = video_feat @ text_feat.T / self.contrastive.temp  # (B, B): rows videos, columns texts
                logits, labels = self.matching_logits(video_embeds, text_embeds, attention_mask, similarity, generator)
                terms["vtm"] = F.cross_entropy(logits, labels)
        if "mlm" in objectives:
            terms["mlm"] = self.mlm_loss(video_embeds, input_ids, attention_mask, generator)
        return {"loss": sum(terms.values()), **terms}

    def matching_logits(self, video_embeds: torch.Tensor, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
                        similarity: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """ITM logits on 3B pairs: B positives, B (text, hard-negative video), B (hard-negative text, video).

        Args:
            video_embeds: (B, 1 + N, D) video tokens; text_embeds: (B, L, D) text-only states; attention_mask: (B, L).
            similarity: (B, B) VTC similarity / temperature, rows videos, columns texts.
            generator: draws one hard negative each way (`sample_hard_negatives`: the positive masked out). The
                negatives come from this process's pairs (the reference indexes the first process's block on every
                rank).

        Returns:
            logits (3B, 2) and labels (3B,): 1 for the B positives first, then 0.
        """
        negative_video = sample_hard_negatives(similarity.T, generator)  # (B,) a video for each text
        negative_text = sample_hard_negatives(similarity, generator)  # (B,) a text for each video
        # index_select, not x[indices]: the backward of advanced indexing accumulates repeated indices with atomic
        # adds on a multi-threaded CPU (run-to-run float differences); index_select's (index_add_) is ordered.
        fused_cls = self.fuse(
            torch.cat([text_embeds, text_embeds, text_embeds.index_select(0, negative_text)]),
            torch.cat([attention_mask, attention_mask, attention_mask.index_select(0, negative_text)]),
            torch.cat([video_embeds, video_embeds.index_select(0, negative_video), video_embeds]),
        )[:, 0]  # (3B, D)
        size = video_embeds.shape[0]
        labels = torch.cat([torch.ones(size), torch.zeros(2 * size)]).long().to(fused_cls.device)  # (3B,)
        return self.itm_head(fused_cls), labels

    def mlm_loss(self, video_embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        """MLM on the fused text: corrupt 15 % of the tokens (`mask_tokens`), encode the text, fuse it with its own
        video (B, 1 + N, D), predict the selected tokens from the fused states (B, L, D) → (B, L, V)."""
        tok = self.tokenizer
        masked_ids, labels = mask_tokens(
            input_ids, generator, mask_token_id=tok.mask_token_id, vocab_size=self.config.text.vocab_size,
            special_ids=(tok.cls_token_id, tok.sep_token_id, tok.pad_token_id),
            probability=self.config.mlm_probability)  # (B, L) each
        fused = self.fuse(self.encode_text(masked_ids, attention_mask), attention_mask, video_embeds)  # (B, L, D)
        return masked_lm_loss(self.mlm_head(fused), labels)

    def match_logits(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """ITM score of aligned pairs: (B,) logit(match) − logit(no match)."""
        fused_cls = self.fuse(self.encode_text(input_ids, attention_mask), attention_mask,
                              self.encode_video(video))[:, 0]  # (B, D)
        logits = self.itm_head(fused_cls)  # (B, 2)
        return logits[:, 1] - logits[:, 0]


class ALPROForClassification(ALPROModel):
    """The backbone + an MLP classifier on the fused CLS (the video CLS or the text CLS in the ablation)."""

    task_heads = ("cls_head",)

    def _build_heads(self, width: int) -> None:
        super()._build_heads(width)
        self.cls_head = MLPHead(width, self.config.num_classes)

    def classify(self, video: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Category logits (B, num_classes) from the fusion CLS; from the video CLS when there is no text
        (vision only), from the text CLS when there is no video (language only)."""
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

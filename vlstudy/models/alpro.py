"""ALPRO-style baseline: TimeSformer video encoder, BERT text encoder, fusion layers from the middle.

ALPRO (Li et al., CVPR 2022, "Align and Prompt") is the encoder baseline of Youku-mPLUG's tables (Xu et al.
2023, Sec. 5). Reference: the ALPRO code shipped with X-PLUG/Youku-mPLUG (``models/alpro.py``), itself from
salesforce/ALPRO. This file keeps the two objectives the study needs:

- VTC, video-text contrastive: CLS features of each unimodal encoder → 256-d, L2-normalised, InfoNCE in both
  directions over features gathered from every process, with a learnable temperature clamped to [0.001, 0.5].
- VTM, video-text matching: the fusion encoder reads a text with cross-attention to video tokens and an ITM
  head on its CLS says match / no match. Each text gets one hard-negative video and each video one hard-negative
  text, sampled from the softmax of the in-batch similarities with the positive masked out.

Structure. The text side is BERT split in two: the first half of its layers are text-only, the second half
("fusion from the middle") add cross-attention to the video tokens. The reference ALPRO fuses by concatenating
text and video tokens; cross-attention fusion is what ALBEF/BLIP-style models and this study's brief use.
Video tokens are the TimeSformer CLS plus the patch tokens averaged over time, as in the reference.

transformers builds BERT cross-attention only in decoder mode (``is_decoder=True``), which also makes the
self-attention causal. `_bidirectional_fusion_encoder` flips the self-attention back to bidirectional after
construction (``config.is_decoder=False`` and every ``attention.self.is_causal=False``); the layers keep their
own ``is_decoder`` flag, which is what switches their cross-attention on. A test checks both.

Ablation switches: `classify` reads the fusion CLS with both modalities, the video CLS without text, the text CLS
without video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import reduce
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoTokenizer, BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertEncoder
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from vlstudy.models.checkpoint_io import WEIGHTS_NAME, load_tensors_into, staged_directory, write_checkpoint
from vlstudy.models.losses import TEMPERATURE_RANGE, sample_hard_negatives, video_text_contrastive_loss
from vlstudy.models.video_encoder import VideoEncoder, VideoEncoderConfig, read_video_model

__all__ = ["TextEncoderConfig", "ALPROConfig", "ALPRO"]

@dataclass
class TextEncoderConfig:
    """BERT text + fusion encoder. Its width is not a field: it is the video encoder's.

    Attributes:
        num_layers: BERT layers in all; the first half is text-only, the rest are fusion layers.
        num_heads: attention heads.
        mlp_ratio: intermediate width / width.
        dropout: hidden and attention dropout.
        max_length: longest text, [CLS] and [SEP] included.
    """

    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_length: int = 64

    def __post_init__(self) -> None:
        if self.num_layers < 2:
            raise ValueError(f"num_layers must be >= 2 (text-only and fusion halves), got {self.num_layers}")
        if self.max_length < 3:
            raise ValueError(f"max_length must leave room for [CLS] text [SEP], got {self.max_length}")


@dataclass
class ALPROConfig:
    """The ALPRO baseline. Widths are derived: text width = video width; the vocabulary is the tokenizer's.

    Attributes:
        video: TimeSformer size.
        text: BERT size.
        contrastive_dim: VTC feature size.
        temperature: initial VTC temperature (learnable, clamped to [0.001, 0.5]).
        num_classes: classification head outputs (45 Youku-mPLUG categories).
    """

    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    contrastive_dim: int = 256
    temperature: float = 0.07
    num_classes: int = 45

    def __post_init__(self) -> None:
        if self.video.hidden_size % self.text.num_heads:
            raise ValueError(f"width {self.video.hidden_size} is not a multiple of text.num_heads "
                             f"{self.text.num_heads}")

    @property
    def num_text_layers(self) -> int:
        return self.text.num_layers // 2

    @property
    def num_fusion_layers(self) -> int:
        return self.text.num_layers - self.num_text_layers


def _bert_config(config: ALPROConfig, tokenizer: PreTrainedTokenizerBase, num_layers: int,
                 cross_attention: bool) -> BertConfig:
    width = config.video.hidden_size
    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=width, num_hidden_layers=num_layers,
        num_attention_heads=config.text.num_heads, intermediate_size=int(width * config.text.mlp_ratio),
        hidden_dropout_prob=config.text.dropout, attention_probs_dropout_prob=config.text.dropout,
        max_position_embeddings=config.text.max_length, pad_token_id=tokenizer.pad_token_id,
        is_decoder=cross_attention, add_cross_attention=cross_attention)


def _bidirectional_fusion_encoder(config: BertConfig) -> BertEncoder:
    """BERT layers with cross-attention to video tokens and bidirectional self-attention (see module docstring)."""
    encoder = BertModel(config, add_pooling_layer=False).encoder  # built inside BertModel for BERT's weight init
    config.is_decoder = False
    for layer in encoder.layer:
        layer.attention.self.is_causal = False
    return encoder


class ALPRO(nn.Module):
    """Video encoder + BERT text encoder + fusion layers, with VTC, VTM and classification heads.

    Args:
        config: sizes; widths are derived from the video encoder.
        tokenizer: a tokenizer with [CLS], [SEP] and [PAD] tokens (e.g. `text_lm.train_char_tokenizer`).
    """

    def __init__(self, config: ALPROConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"ALPRO needs a tokenizer with a {name.removesuffix('_id')}")
        self.config = config
        self.tokenizer = tokenizer
        width = config.video.hidden_size
        self.video_encoder = VideoEncoder(config.video)
        self.text_encoder = BertModel(_bert_config(config, tokenizer, config.num_text_layers, False),
                                      add_pooling_layer=False)
        self.fusion_encoder = _bidirectional_fusion_encoder(
            _bert_config(config, tokenizer, config.num_fusion_layers, True))
        self.vision_proj = nn.Linear(width, config.contrastive_dim)
        self.text_proj = nn.Linear(width, config.contrastive_dim)
        self.temp = nn.Parameter(torch.tensor(config.temperature))
        self.itm_head = nn.Linear(width, 2)
        self.cls_head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, config.num_classes))

    # ---- inputs -------------------------------------------------------------------------------------------------

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[CLS] text [SEP]``, truncated to ``config.text.max_length``, right-padded.

        Returns:
            input_ids (B, L) and attention_mask (B, L), on the model's device.
        """
        tok, keep = self.tokenizer, self.config.text.max_length - 2
        rows = [torch.tensor([tok.cls_token_id, *ids[:keep], tok.sep_token_id])
                for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        input_ids = pad_sequence(rows, batch_first=True, padding_value=tok.pad_token_id)  # (B, L)
        attention_mask = pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)  # (B, L)
        device = self.temp.device
        return input_ids.to(device), attention_mask.to(device)

    # ---- encoders -----------------------------------------------------------------------------------------------

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) → (B, 1 + N, D): the CLS token, then each patch averaged over time (as ALPRO)."""
        tokens = self.video_encoder(video)  # (B, 1 + N*T, D)
        patches = reduce(tokens[:, 1:], "b (n t) d -> b n d", "mean", t=video.shape[1])  # (B, N, D)
        return torch.cat([tokens[:, :1], patches], dim=1)  # (B, 1 + N, D)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text-only half of BERT: (B, L) ids → (B, L, D)."""
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def fuse(self, text_embeds: torch.Tensor, attention_mask: torch.Tensor,
             video_embeds: torch.Tensor) -> torch.Tensor:
        """Fusion half: text tokens self-attend (bidirectionally) and cross-attend to video tokens.

        Args:
            text_embeds: (B, L, D) from `encode_text`.
            attention_mask: (B, L), 1 on real tokens.
            video_embeds: (B, 1 + N, D) from `encode_video`.

        Returns:
            (B, L, D); position 0 is the fused CLS.
        """
        dtype = text_embeds.dtype
        additive = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # (B, 1, 1, L)
        return self.fusion_encoder(text_embeds, attention_mask=additive,
                                   encoder_hidden_states=video_embeds).last_hidden_state

    def features(self, video: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """VTC features for retrieval: (B, E) L2-normalised video features and (K, E) text features."""
        video_feat = text_feat = None
        if video is not None:
            video_feat = F.normalize(self.vision_proj(self.encode_video(video)[:, 0]), dim=-1)  # (B, E)
        if input_ids is not None:
            text_feat = F.normalize(self.text_proj(self.encode_text(input_ids, attention_mask)[:, 0]), dim=-1)
        return video_feat, text_feat

    # ---- objectives and heads -----------------------------------------------------------------------------------

    def pretrain_losses(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        generator: torch.Generator) -> dict[str, torch.Tensor]:
        """VTC + VTM on a batch of aligned pairs.

        Args:
            video: (B, T, C, H, W); row i pairs with text i.
            input_ids: (B, L) from `tokenize`.
            attention_mask: (B, L).
            generator: CPU generator for the hard-negative draws.

        Returns:
            ``{"loss": vtc + vtm, "vtc": ..., "vtm": ...}``, scalars.
        """
        with torch.no_grad():
            self.temp.clamp_(*TEMPERATURE_RANGE)
        video_embeds = self.encode_video(video)  # (B, 1 + N, D)
        text_embeds = self.encode_text(input_ids, attention_mask)  # (B, L, D)
        video_feat = F.normalize(self.vision_proj(video_embeds[:, 0]), dim=-1)  # (B, E)
        text_feat = F.normalize(self.text_proj(text_embeds[:, 0]), dim=-1)  # (B, E)
        vtc = video_text_contrastive_loss(video_feat, text_feat, self.temp)

        # VTM on 3B pairs: B positives, B (text, hard-negative video), B (hard-negative text, video).
        # Negatives come from this process's pairs (the reference indexes the first process's block on every rank).
        similarity = video_feat @ text_feat.T / self.temp  # (B, B): rows videos, columns texts
        negative_video = sample_hard_negatives(similarity.T, generator)  # (B,) a video for each text
        negative_text = sample_hard_negatives(similarity, generator)  # (B,) a text for each video
        fused_cls = self.fuse(
            torch.cat([text_embeds, text_embeds, text_embeds[negative_text]]),
            torch.cat([attention_mask, attention_mask, attention_mask[negative_text]]),
            torch.cat([video_embeds, video_embeds[negative_video], video_embeds]),
        )[:, 0]  # (3B, D)
        size = video.shape[0]
        itm_labels = torch.cat([torch.ones(size), torch.zeros(2 * size)]).long().to(fused_cls.device)
        vtm = F.cross_entropy(self.itm_head(fused_cls), itm_labels)
        return {"loss": vtc + vtm, "vtc": vtc, "vtm": vtm}

    def match_logits(self, video: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """ITM score of aligned pairs: (B,) logit(match) − logit(no match)."""
        fused_cls = self.fuse(self.encode_text(input_ids, attention_mask), attention_mask,
                              self.encode_video(video))[:, 0]  # (B, D)
        logits = self.itm_head(fused_cls)  # (B, 2)
        return logits[:, 1] - logits[:, 0]

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

    # ---- save / load --------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json``, ``model.safetensors`` (every weight) and the tokenizer into `directory`."""
        with staged_directory(directory) as staging:
            write_checkpoint(staging, self.config, self.state_dict())
            self.tokenizer.save_pretrained(staging)

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: ALPROConfig | None = None) -> ALPRO:
        """Load a model saved by `save_pretrained`.

        Args:
            directory: the saved folder.
            config: a config to build instead of the saved one (e.g. another frame count: the time embeddings
                are resampled); every tensor must still fit.

        Raises:
            FileNotFoundError: a missing file, named.
            CheckpointError: a missing, unexpected or wrongly shaped tensor, named with the file.
        """
        config, tensors = read_video_model(directory, ALPROConfig, config)
        model = cls(config, AutoTokenizer.from_pretrained(directory))
        load_tensors_into(model, tensors, Path(directory) / WEIGHTS_NAME)
        return model

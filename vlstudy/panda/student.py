"""The text branch of Panda-70M's student captioner and its gradient block (Chen et al., CVPR 2024, Sec. 3.4, Fig. 4).

The student has a vision branch (video encoder -> visual queries -> LM prefix) and a text branch: a text
Q-former whose learnable queries cross-attend to the metadata's token embeddings (title, description,
subtitles) and return a fixed number of tokens however long the text is ("the Q-former has the same
architecture as the Query Transformer in BLIP-2"). "During training, we block the gradient propagation from
the text branch to the vision branch and train the visual encoder only based on the video input."

Here, as pseudo-code::

    text = TextQFormer(metadata_embeddings, metadata_mask)             # (B, Q, D): fixed length
    prefix, mask = student_prefix(video_prefix, text, has_text)        # (B, Nv + Q, D)
    # for samples with text, video_prefix enters detached: the caption loss of a text-conditioned sample
    # trains the text branch (and the LM side) but sends nothing into the vision branch; samples without
    # text (the paper feeds metadata only sometimes) train the vision branch as usual.

The Q-former block follows BLIP-2's query path (query self-attention, cross-attention to the condition, MLP;
here pre-LayerNorm residual blocks, without BLIP-2's shared BERT text path). When the text queries also look at
video tokens (``video_tokens``), those enter through :func:`block_gradient` as well. Modules only: the lead wires
them into the captioner (independent of mPLUG-video's class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TextQFormerConfig", "QFormerBlock", "TextQFormer", "block_gradient", "student_prefix"]


@dataclass
class TextQFormerConfig:
    """Sizes of the text Q-former.

    Attributes:
        text_width: width of the metadata token embeddings fed in (e.g. the LM's embedding width).
        hidden_size: D inside the Q-former.
        num_queries: Q, the fixed output length.
        num_layers: blocks.
        num_heads: attention heads; divides hidden_size.
        mlp_ratio: MLP width / hidden_size.
        dropout: on attention weights and the MLP.
        output_width: width of the output tokens (the LM's); None keeps hidden_size.
    """

    text_width: int = 128
    hidden_size: int = 128
    num_queries: int = 8
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    output_width: int | None = None

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if min(self.num_queries, self.num_layers, self.text_width) < 1:
            raise ValueError("num_queries, num_layers and text_width must be positive")


def block_gradient(tokens: torch.Tensor) -> torch.Tensor:
    """The vision side as the text branch may see it: same values, no gradient back (``detach``)."""
    return tokens.detach()


class QFormerBlock(nn.Module):
    """Queries attend to themselves, then to the condition tokens, then an MLP (pre-LN residuals)."""

    def __init__(self, config: TextQFormerConfig):
        super().__init__()
        d, h, p = config.hidden_size, config.num_heads, config.dropout
        self.norm_self, self.norm_cross, self.norm_mlp = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, int(d * config.mlp_ratio)), nn.GELU(), nn.Dropout(p),
                                 nn.Linear(int(d * config.mlp_ratio), d))

    def forward(self, queries: torch.Tensor, context: torch.Tensor, context_pad: torch.Tensor | None) -> torch.Tensor:
        """queries (B, Q, D), context (B, L, D), context_pad (B, L) True where padding -> (B, Q, D)."""
        x = self.norm_self(queries)
        queries = queries + self.self_attn(x, x, x, need_weights=False)[0]
        x = self.norm_cross(queries)
        queries = queries + self.cross_attn(x, context, context, key_padding_mask=context_pad, need_weights=False)[0]
        return queries + self.mlp(self.norm_mlp(queries))


class TextQFormer(nn.Module):
    """Learnable queries reading the metadata text: (B, L, text_width) embeddings -> (B, Q, output_width).

    Args:
        config: sizes.
    """

    def __init__(self, config: TextQFormerConfig):
        super().__init__()
        self.config = config
        self.queries = nn.Parameter(torch.randn(1, config.num_queries, config.hidden_size) * 0.02)
        self.text_proj = nn.Linear(config.text_width, config.hidden_size)
        self.blocks = nn.ModuleList(QFormerBlock(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.output_width or config.hidden_size)

    def forward(self, text_embeds: torch.Tensor, text_mask: torch.Tensor | None = None,
                video_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Encode metadata text into Q tokens.

        Args:
            text_embeds: (B, L, text_width) token embeddings of the title / description / subtitles.
            text_mask: (B, L) bool, True for real tokens (None: all real). A row may be all padding.
            video_tokens: optional (B, Nv, hidden_size) video tokens the queries may also read; they enter through
                :func:`block_gradient`.

        Returns:
            (B, Q, output_width).
        """
        b, length, width = text_embeds.shape
        if width != self.config.text_width:
            raise ValueError(f"text_embeds must be (B, L, {self.config.text_width}), got {tuple(text_embeds.shape)}")
        mask = torch.ones(b, length, dtype=torch.bool, device=text_embeds.device) if text_mask is None else text_mask
        context = self.text_proj(text_embeds)  # (B, L, D)
        if video_tokens is not None:
            context = torch.cat([context, block_gradient(video_tokens)], dim=1)  # (B, L + Nv, D)
            mask = torch.cat([mask, mask.new_ones(video_tokens.shape[:2])], dim=1)
        # a row with no real token attends to a zero token instead (softmax over nothing is NaN)
        empty = ~mask.any(dim=1)
        context = torch.cat([context, context.new_zeros(b, 1, context.shape[-1])], dim=1)
        pad = torch.cat([~mask, ~empty[:, None]], dim=1)  # (B, L' + 1) True = ignore
        queries = self.queries.expand(b, -1, -1)  # (B, Q, D)
        for block in self.blocks:
            queries = block(queries, context, pad)
        return self.out_proj(self.norm(queries))  # (B, Q, output_width)


def student_prefix(video_prefix: torch.Tensor, text_prefix: torch.Tensor,
                   has_text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LM prefix of the student: video tokens, then text tokens, with the gradient block.

    Args:
        video_prefix: (B, Nv, D) the vision branch's output.
        text_prefix: (B, Q, D) the text branch's output.
        has_text: (B,) bool, whether a sample gets its metadata (else its text tokens are masked out).

    Returns:
        (prefix (B, Nv + Q, D), attention mask (B, Nv + Q) bool). For samples with text the video tokens are
        detached, so their loss trains the text branch but not the vision branch.
    """
    if video_prefix.shape[0] != text_prefix.shape[0] or has_text.shape != video_prefix.shape[:1]:
        raise ValueError(f"video {tuple(video_prefix.shape)}, text {tuple(text_prefix.shape)} and has_text "
                         f"{tuple(has_text.shape)} must share the batch size")
    video = torch.where(has_text[:, None, None], block_gradient(video_prefix), video_prefix)
    mask = torch.cat([has_text.new_ones(video_prefix.shape[:2]), has_text[:, None].expand(-1, text_prefix.shape[1])],
                     dim=1)
    return torch.cat([video, text_prefix], dim=1), mask

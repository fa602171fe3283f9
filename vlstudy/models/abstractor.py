"""The visual abstractor of mPLUG-video: M learnable queries summarise all video tokens for the language model.

Youku-mPLUG (Xu et al. 2023, Sec. 4.1): "a visual abstractor module ... with learnable queries" reduces the
TimeSformer's N*T tokens to M (128 at full scale) and a linear layer maps them to the LM's width; the result is
prepended to the LM's token embeddings. The block follows the official ``AttentionPool``
(X-PLUG/Youku-mPLUG ``models/vision_transformer.py``), including its residual placement:

    q = LN_q(queries);  k = LN_k(video tokens)
    x = q + MultiheadAttention(q, k, k)              # residual on the *normalised* queries, as released
    x = x + MLP(LN(x))

The official attention also has ``add_bias_kv=True``: a learned key/value pair is appended to the video tokens,
so a query can attend to "nothing". Extra blocks (``num_layers > 1``) repeat the same structure.

Language-only mode (the modality ablation): with no video, each block skips its cross-attention and runs the
queries through its MLP only, so the prefix becomes a learned soft prompt of M tokens.

The abstractor is a part of mPLUG-video, not a model of its own: its config is a ``PreTrainedConfig`` so that it
nests in ``MPLUGVideoConfig`` (and in its ``config.json``), and its blocks are transformers'
``GradientCheckpointingLayer`` so that activation checkpointing reaches them.
"""

from __future__ import annotations

import torch
from einops import repeat
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_layers import GradientCheckpointingLayer

__all__ = ["AbstractorConfig", "AbstractorBlock", "Abstractor"]


@strict
class AbstractorConfig(PreTrainedConfig):
    """Visual abstractor size. The key width is not a field: it is the video encoder's width.

    Attributes:
        num_queries: learnable queries M (the official full-scale value is 128).
        num_layers: cross-attention + MLP blocks (1 in the paper).
        num_heads: attention heads; divides the video width.
        mlp_ratio: MLP width / video width.
        dropout: dropout after the attention and inside the MLP.
    """

    model_type = "vlstudy_abstractor"

    num_queries: int = 16
    num_layers: int = 1
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self, **kwargs) -> None:
        super().__post_init__(**kwargs)
        if self.num_queries < 1 or self.num_layers < 1:
            raise ValueError("num_queries and num_layers must be positive")


class AbstractorBlock(GradientCheckpointingLayer):
    """Queries cross-attend to video tokens, then an MLP; residuals and norms as in the official AttentionPool.

    Args:
        width: query and video-token width (D).
        config: heads, MLP ratio, dropout.
    """

    def __init__(self, width: int, config: AbstractorConfig) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(width, eps=1e-6)
        self.norm_kv = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, config.num_heads, dropout=config.dropout, add_bias_kv=True,
                                          batch_first=True)
        self.norm_mlp = nn.LayerNorm(width, eps=1e-6)
        hidden = int(width * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width),
                                 nn.Dropout(config.dropout))

    def forward(self, queries: torch.Tensor, video_tokens: torch.Tensor | None) -> torch.Tensor:
        """Args:
            queries: (B, Q, D).
            video_tokens: (B, T*N + 1, D), or None for language-only mode (cross-attention skipped).

        Returns:
            (B, Q, D).
        """
        x = self.norm_q(queries)
        if video_tokens is not None:
            kv = self.norm_kv(video_tokens)
            x = x + self.attn(x, kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class Abstractor(nn.Module):
    """M learnable queries → blocks over the video tokens → linear projection to the LM width.

    Args:
        config: queries, blocks, heads.
        key_width: the video encoder's width (the queries share it).
        out_width: the language model's hidden size.
    """

    def __init__(self, config: AbstractorConfig, key_width: int, out_width: int) -> None:
        super().__init__()
        if key_width % config.num_heads:
            raise ValueError(f"video width {key_width} is not a multiple of the abstractor's {config.num_heads} heads")
        self.config = config
        self.queries = nn.Parameter(torch.empty(1, config.num_queries, key_width))
        self.blocks = nn.ModuleList(AbstractorBlock(key_width, config) for _ in range(config.num_layers))
        self.proj = nn.Linear(key_width, out_width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation of the queries (``learnable_queries``) and the projection (``visual_fc``):
        truncated normal, std 0.015, zero bias."""
        nn.init.trunc_normal_(self.queries, std=0.015)
        nn.init.trunc_normal_(self.proj.weight, std=0.015)
        nn.init.zeros_(self.proj.bias)

    def forward(self, video_tokens: torch.Tensor | None, batch_size: int | None = None) -> torch.Tensor:
        """Summarise a clip into M prefix embeddings for the LM.

        Args:
            video_tokens: (B, T*N + 1, D) from the video encoder, or None for language-only mode.
            batch_size: B, needed only when `video_tokens` is None.

        Returns:
            (B, Q, D_lm) prefix embeddings.
        """
        if video_tokens is not None:
            batch_size = video_tokens.shape[0]
        elif batch_size is None:
            raise ValueError("batch_size is required when video_tokens is None (language-only mode)")
        x = repeat(self.queries, "1 q d -> b q d", b=batch_size)  # (B, Q, D)
        for block in self.blocks:
            x = block(x, video_tokens)
        return self.proj(x)  # (B, Q, D_lm)

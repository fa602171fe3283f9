"""What the BERT-style dual encoders of the kit (ALPRO, mPLUG-2) share: a character tokenizer saved inside the
model folder, ``[CLS] text [SEP]`` batches, and the VTC features retrieval ranks by.

The tokenizer is the text-LM stage's (`vlstudy.models.text_lm.train_char_tokenizer`); transformers'
``PreTrainedModel.save_pretrained`` does not save a tokenizer, so the model folder keeps it in a subfolder, read
back by ``from_pretrained`` through `saved_init_kwargs` (the `StrictPreTrainedModel` convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from vlstudy.models.text_lm import load_tokenizer

__all__ = ["TOKENIZER_DIR", "BertTextMixin", "DualEncoderMixin"]

TOKENIZER_DIR = "tokenizer"  # subfolder of a saved model that holds its tokenizer


class BertTextMixin:
    """For a model with ``self.tokenizer`` and ``config.text.max_length``: saving/loading the tokenizer with the
    weights, and tokenizing texts for its BERT text encoder."""

    def save_extras(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)

    @classmethod
    def saved_init_kwargs(cls, directory: str | Path) -> dict[str, Any]:
        """The tokenizer saved with the weights (a subfolder, so that its loader never reads this model's config)."""
        return {"tokenizer": load_tokenizer(Path(directory) / TOKENIZER_DIR)}

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[CLS] text [SEP]``, truncated to ``config.text.max_length``, right-padded: input_ids (B, L) and
        attention_mask (B, L) on the model's device."""
        tok, keep = self.tokenizer, self.config.text.max_length - 2
        rows = [torch.tensor([tok.cls_token_id, *ids[:keep], tok.sep_token_id])
                for ids in tok(list(texts), add_special_tokens=False)["input_ids"]]
        input_ids = pad_sequence(rows, batch_first=True, padding_value=tok.pad_token_id)  # (B, L)
        attention_mask = pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)  # (B, L)
        return input_ids.to(self.device), attention_mask.to(self.device)


class DualEncoderMixin:
    """For a model with ``encode_video``, ``encode_text`` (CLS first) and a ``contrastive`` head: the VTC features
    that retrieval ranks by (ALPRO's and mPLUG-2's retrieval classes)."""

    def features(self, video: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """VTC features for retrieval: (B, E) L2-normalised video features and (K, E) text features."""
        video_feat = text_feat = None
        if video is not None:
            video_feat = self.contrastive.project_video(self.encode_video(video)[:, 0])  # (B, E)
        if input_ids is not None:
            text_feat = self.contrastive.project_text(self.encode_text(input_ids, attention_mask)[:, 0])  # (K, E)
        return video_feat, text_feat

"""BERTScore F1 (Zhang et al., ICLR 2020) of captions against references, from a local BERT-style model folder.

Panda-70M (Tables 3-4) reports BERTScore beside the n-gram metrics. As the ``bert_score`` package computes it
(Tiiiger/bert_score, ``score`` with ``idf=False``, no baseline rescaling): every token of the candidate and of the
reference is embedded by one layer of the model (special tokens dropped), embeddings are unit-normalised,
precision is the mean over candidate tokens of their best cosine with a reference token, recall the mean over
reference tokens of their best cosine with a candidate token, F1 their harmonic mean; with several references the
best F1 counts. Written by hand (about 30 lines): the ``bert_score`` package is not a dependency of the kit, and
nothing may be downloaded, so the model is always a local folder (e.g. a saved ``bert-base-chinese``, whose
``bert_score`` default layer is 8). The texts are the captions as written (Chinese needs no normalisation for a
character-level BERT tokenizer). Values x100, like the other caption metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlstudy.metrics.base import MetricError

__all__ = ["BertScorer"]


class BertScorer:
    """BERTScore F1 with a local model.

    Args:
        model_dir: a folder with a Hugging Face encoder (``AutoModel``) and its tokenizer.
        layer: the hidden layer whose output embeds tokens (None: the last).
        batch_size: texts per forward pass.
    """

    def __init__(self, model_dir: str | Path, layer: int | None = None, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no such BERTScore model folder")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self.layer, self.batch_size, self.name = layer, batch_size, model_dir.name

    @torch.no_grad()
    def _embed(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Per text its (L_i, D) unit token embeddings, special tokens left out."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), return_tensors="pt", padding=True,
                                   return_special_tokens_mask=True)
            special = batch.pop("special_tokens_mask").bool()
            hidden = self.model(**batch, output_hidden_states=True).hidden_states
            states = hidden[-1 if self.layer is None else self.layer]  # (B, L, D)
            keep = batch["attention_mask"].bool() & ~special
            out += [torch.nn.functional.normalize(s[k], dim=-1) for s, k in zip(states, keep)]
        return out

    def __call__(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """(N,) BERTScore F1 (x100) of each candidate, its best over the candidate's references."""
        if len(candidates) != len(references) or any(not refs for refs in references):
            raise MetricError(f"{len(candidates)} candidates need as many non-empty reference lists, got "
                              f"{len(references)}")
        flat = [r for refs in references for r in refs]
        cand, ref = self._embed(candidates), self._embed(flat)
        scores, k = np.zeros(len(candidates)), 0
        for i, refs in enumerate(references):
            best = 0.0
            for r in ref[k:k + len(refs)]:
                if len(cand[i]) and len(r):
                    sim = cand[i] @ r.T  # (Lc, Lr)
                    p, rec = sim.max(dim=1).values.mean(), sim.max(dim=0).values.mean()
                    best = max(best, float(2 * p * rec / (p + rec)))
            scores[i], k = 100.0 * best, k + len(refs)
        return scores

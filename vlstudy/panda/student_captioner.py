"""Panda-70M's two-branch student captioner on mPLUG-video (Chen et al., CVPR 2024, Sec. 3.4, Fig. 4, App. D).

The vision branch is mPLUG-video's (video encoder -> abstractor -> Q visual tokens at the LM width); the text
branch is a :class:`vlstudy.panda.student.TextQFormer` reading the metadata's token embeddings (the frozen LM's own
embedding table) and returning Qt tokens however long the metadata is. Both go before the caption into the frozen
causal LM::

    prefix_b = [video tokens (Q)] + ([text tokens (Qt)] if has_text_b)   # student_prefix: gradient block
    [prefix_b] [BOS] caption [EOS]   -> LM loss on the caption and EOS

"During training, we block the gradient propagation from the text branch to the vision branch and train the visual
encoder only based on the video input" (Sec. 3.4), and "we also randomly input the metadata and subtitles into the
model during training" (Sec. 4.1): a sample's ``has_text`` is drawn per step; samples with text detach their
visual tokens (:func:`vlstudy.panda.student.student_prefix`), so only samples without text train the vision
branch. One trained student is evaluated twice: video only (``has_text`` False) and video + text.

Each row's prefix keeps only its real tokens (a video-only row has Q, a row with text Q + Qt), so positions are
the same in training and decoding; rows are right-padded for the loss and left-padded for generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from vlstudy.io import atomic_path, read_json, write_json
from vlstudy.models.mplug_video import MPLUGVideoModel
from vlstudy.models.prompting import IGNORE_INDEX, bos_ids, encode, pad_id
from vlstudy.panda.student import TextQFormer, TextQFormerConfig, student_prefix

__all__ = ["StudentCaptioner"]

TEXT_BRANCH_FILE, TEXT_CONFIG_FILE, CAPTIONER_DIR = "text_branch.safetensors", "text_branch.json", "captioner"


class StudentCaptioner(nn.Module):
    """mPLUG-video + a text Q-former over the metadata (module docstring).

    Args:
        captioner: the vision branch and the frozen LM (trainable parts as mPLUG-video's).
        text: the text Q-former's sizes; its input and output widths are set to the LM's here.
        max_metadata_tokens: metadata longer than this many tokens loses its tail.
    """

    def __init__(self, captioner: MPLUGVideoModel, text: TextQFormerConfig, max_metadata_tokens: int = 96):
        super().__init__()
        width = captioner.lm.config.hidden_size
        text.text_width = text.output_width = width
        self.captioner, self.max_metadata_tokens = captioner, max_metadata_tokens
        self.text_branch = TextQFormer(text)

    @property
    def device(self) -> torch.device:
        return self.captioner.device

    def _metadata(self, metadata: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen LM token embeddings of each metadata text (B, L, D) and its mask (B, L)."""
        tok, embed = self.captioner.tokenizer, self.captioner.lm.get_input_embeddings()
        rows = [torch.tensor(ids[:self.max_metadata_tokens] or [pad_id(tok)]) for ids in encode(tok, metadata)]
        ids = pad_sequence(rows, batch_first=True, padding_value=pad_id(tok)).to(self.device)  # (B, L)
        mask = pad_sequence([torch.ones(len(r), dtype=torch.bool) for r in rows], batch_first=True).to(self.device)
        with torch.no_grad():
            return embed(ids), mask

    def prefix(self, video: torch.Tensor, metadata: Sequence[str], has_text: torch.Tensor) -> list[torch.Tensor]:
        """Per row its prefix (Q or Q + Qt, D): video tokens, then text tokens when the row has text."""
        video_prefix = self.captioner.visual_prefix(video, batch_size=video.shape[0])  # (B, Q, D)
        embeds, mask = self._metadata(metadata)
        text_prefix = self.text_branch(embeds, mask).to(video_prefix.dtype)  # (B, Qt, D)
        has_text = has_text.to(self.device)
        prefix, keep = student_prefix(video_prefix, text_prefix, has_text)  # (B, Q + Qt, D), (B, Q + Qt)
        return [row[k] for row, k in zip(prefix, keep)]

    def loss(self, video: torch.Tensor, metadata: Sequence[str], has_text: torch.Tensor,
             captions: Sequence[str]) -> torch.Tensor:
        """Token-mean LM loss of ``[BOS] caption [EOS]`` after each row's prefix (labels on caption and EOS)."""
        tok, embed = self.captioner.tokenizer, self.captioner.lm.get_input_embeddings()
        limit = self.captioner.config.max_text_length
        rows, labels = [], []
        for prefix, ids in zip(self.prefix(video, metadata, has_text), encode(tok, captions)):
            ids = torch.tensor((bos_ids(tok) + ids + [tok.eos_token_id])[:limit], device=self.device)
            rows.append(torch.cat([prefix, embed(ids)]))  # (P_b + L_b, D)
            target = ids.clone()
            target[:len(bos_ids(tok))] = IGNORE_INDEX
            labels.append(torch.cat([ids.new_full((len(prefix),), IGNORE_INDEX), target]))
        embeds = pad_sequence(rows, batch_first=True)  # (B, T, D)
        mask = pad_sequence([torch.ones(len(r), dtype=torch.long, device=self.device) for r in rows],
                            batch_first=True)
        targets = pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)  # (B, T)
        logits = self.captioner.lm(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits  # (B, T, V)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets[:, 1:].flatten(),
                               ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def generate(self, video: torch.Tensor, metadata: Sequence[str], has_text: torch.Tensor, num_beams: int = 1,
                 length_penalty: float = 1.0, max_new_tokens: int = 30) -> list[str]:
        """B captions: each row's prefix and [BOS], left-padded, decoded by the frozen LM."""
        tok, embed = self.captioner.tokenizer, self.captioner.lm.get_input_embeddings()
        bos = embed(torch.tensor(bos_ids(tok), dtype=torch.long, device=self.device))  # (0 or 1, D)
        rows = [torch.cat([prefix, bos]) for prefix in self.prefix(video, metadata, has_text)]
        embeds = pad_sequence(rows, batch_first=True, padding_side="left")  # (B, P, D)
        mask = pad_sequence([torch.ones(len(r), dtype=torch.long, device=self.device) for r in rows],
                            batch_first=True, padding_side="left")
        with self.captioner.lm_inference():
            ids = self.captioner.lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                             num_beams=num_beams, length_penalty=length_penalty, do_sample=False,
                                             eos_token_id=tok.eos_token_id, pad_token_id=pad_id(tok))
        return tok.batch_decode(ids, skip_special_tokens=True)

    def save(self, directory: str | Path) -> None:
        """The captioner (``save_pretrained``: without the frozen LM) and the text branch (safetensors + sizes)."""
        directory = Path(directory)
        self.captioner.save_pretrained(directory / CAPTIONER_DIR)
        with atomic_path(directory / TEXT_BRANCH_FILE) as tmp:
            save_file({k: v.contiguous() for k, v in self.text_branch.state_dict().items()}, str(tmp))
        write_json(directory / TEXT_CONFIG_FILE, {**vars(self.text_branch.config),
                                                  "max_metadata_tokens": self.max_metadata_tokens})

    @classmethod
    def load(cls, directory: str | Path) -> StudentCaptioner:
        """A student saved by :meth:`save` (strict: every text-branch tensor must match)."""
        directory = Path(directory)
        sizes = read_json(directory / TEXT_CONFIG_FILE)
        max_tokens = sizes.pop("max_metadata_tokens")
        student = cls(MPLUGVideoModel.from_pretrained(directory / CAPTIONER_DIR), TextQFormerConfig(**sizes),
                      max_tokens)
        student.text_branch.load_state_dict(load_file(str(directory / TEXT_BRANCH_FILE)), strict=True)
        return student

"""mPLUG-video's generative classification scores: the grouped candidate pass against the padded one it replaced.

`MPLUGVideoModel._score_candidates` runs the 45 class names on top of the contexts' key/value cache in groups of
equal length, no padding (`vlstudy.models.prompting.score_on_cache`). Until 2026-12-01 it ran them as one batch
padded to the longest name (12 characters + EOS) and discarded the padding. This script runs both on the same batches (the classification prompts of real
val titles, the study's pre-trained mPLUG-video, random clips) and prints their time per batch, the ratio, the
largest score difference and whether the top-1 class agrees everywhere.

    python benchmarks/candidate_scoring.py                      # 8 batches of 16 (the eval batch size)
    python benchmarks/candidate_scoring.py --batches 4 --model checkpoints/pretrain_mplug_video/model
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn.utils.rnn import pad_sequence

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.prompts import classification_prompt
from vlstudy.models.mplug_video import MPLUGVideoForClassification
from vlstudy.models.prompting import bos_ids, encode, pad_id
from vlstudy.tasks.common import load_split


@torch.no_grad()
def padded_scores(model, prefix: torch.Tensor, prompts: list[str], candidates: list[str]) -> torch.Tensor:
    """(B, K) the previous implementation: every candidate + EOS padded to the longest, one batch on the cache."""
    tok, embed, num = model.tokenizer, model.lm.get_input_embeddings(), len(candidates)
    rows = [torch.cat([prefix[b], embed(torch.tensor(bos_ids(tok) + ids))]) for b, ids in enumerate(encode(tok, prompts))]
    context = pad_sequence(rows, batch_first=True, padding_side="left")
    context_mask = pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True,
                                padding_side="left")
    lengths = context_mask.sum(dim=1)
    cand_rows = [torch.tensor(ids + [tok.eos_token_id]) for ids in encode(tok, candidates)]
    cand_ids = pad_sequence(cand_rows, batch_first=True, padding_value=pad_id(tok))
    cand_mask = pad_sequence([torch.ones_like(r) for r in cand_rows], batch_first=True)
    batch = len(rows)
    with model.lm_inference():
        first = model.lm(inputs_embeds=context, attention_mask=context_mask, use_cache=True,
                         **model._lm_kwargs((context_mask.cumsum(1) - 1).clamp(min=0)))
        cache = first.past_key_values
        cache.batch_repeat_interleave(num)
        positions = lengths.repeat_interleave(num)[:, None] + torch.arange(cand_ids.shape[1])
        rest = model.lm(input_ids=cand_ids.repeat(batch, 1), past_key_values=cache,
                        attention_mask=torch.cat([context_mask.repeat_interleave(num, 0), cand_mask.repeat(batch, 1)], 1),
                        **model._lm_kwargs(positions))
    logits = torch.cat([first.logits[:, -1:].repeat_interleave(num, 0), rest.logits[:, :-1]], dim=1)
    token_logp = logits.float().log_softmax(-1).gather(-1, cand_ids.repeat(batch, 1)[..., None]).squeeze(-1)
    return (token_logp * cand_mask.repeat(batch, 1)).sum(dim=1).view(batch, num)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="checkpoints/pretrain_mplug_video/model")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = MPLUGVideoForClassification.from_pretrained(args.model).eval()
    titles = load_split(args.data, "classification", "val")["title"].tolist()
    video_cfg = model.config.video
    times = {"padded": 0.0, "grouped": 0.0}
    worst, agree, items = 0.0, 0, 0
    for i in range(args.batches):
        prompts = [classification_prompt(t) for t in titles[i * args.batch_size: (i + 1) * args.batch_size]]
        video = torch.randn(len(prompts), video_cfg.num_frames, 3, video_cfg.image_size, video_cfg.image_size)
        prefix = model.visual_prefix(video, len(prompts))
        t0 = time.perf_counter()
        old = padded_scores(model, prefix, prompts, list(CLASS_NAMES))
        t1 = time.perf_counter()
        new = model._score_candidates(prefix, prompts, list(CLASS_NAMES))[0]
        t2 = time.perf_counter()
        if i:  # the first batch warms both up
            times["padded"] += t1 - t0
            times["grouped"] += t2 - t1
        worst = max(worst, (old - new).abs().max().item())
        agree += int((old.argmax(1) == new.argmax(1)).sum())
        items += len(prompts)
    runs = max(1, args.batches - 1)
    print(f"{args.batches} batches of {args.batch_size}, 45 class names; seconds per batch (first batch not timed)")
    print(f"padded (one batch, longest name + EOS): {times['padded'] / runs:.3f}")
    print(f"grouped by length (this kit):          {times['grouped'] / runs:.3f}")
    print(f"ratio padded / grouped:                {times['padded'] / max(times['grouped'], 1e-9):.2f}")
    print(f"largest score difference: {worst:.2e}; top-1 class the same for {agree} of {items} items")


if __name__ == "__main__":
    main()

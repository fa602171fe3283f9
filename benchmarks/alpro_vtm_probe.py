"""Can ALPRO's matching head (VTM) learn on mini-Youku at all? A diagnostic for the pre-training stage.

`pretrain_alpro` ends with its held-out VTM loss at the label prior (0.637: 1 match : 2 non-matches, always "no"),
while VTC learns (InfoNCE 3.47 -> ~2.0 over its ~550 steps). This script separates the two possible causes:

* the negatives: ALPRO draws them from the softmax of the VTC similarities (hard negatives); on mini-Youku the most
  similar title is often one generated from the same category and cues, as a true match reads. Here a copy of the
  pre-trained model continues with VTM alone on *random* negatives (drawn uniformly among the batch's other
  items), on ALPRO's hard negatives (drawn by the model's own VTC, which moves as it trains) and on the
  checkpoint's hard negatives (drawn by the checkpoint's VTC, which does not), for the same steps and learning
  rate;
* the fusion: if VTM stays at the prior even on random negatives, the fused [CLS] does not carry the match;
* the joint objective: VTM learns alone but not beside MLM and VTC (the third arm continues with the summed loss;
  the script also prints each term's gradient norm on one batch);
* the moving encoders: the "fusion" arm freezes the checkpoint's encoders (eval mode, no gradient) and trains only
  freshly initialised fusion layers and ITM head, with VTM alone on the checkpoint's hard negatives (the "frozen"
  arm's task with the encoders held still): do the features the checkpoint hands over carry the match at all?

For each arm it prints the held-out VTM loss and AUC (match vs non-match logit margin) on random negatives, on the
model's own hard negatives and on the checkpoint's hard negatives ("frozen": the same pairs for every arm, so an
arm whose VTC drifts cannot look better by making its own negatives easy), before and after. Nothing is written.

    python benchmarks/alpro_vtm_probe.py                    # the default workspace's checkpoint and data
    python benchmarks/alpro_vtm_probe.py --steps 100 --val 64   # quicker
    python benchmarks/alpro_vtm_probe.py --arms frozen hard --steps 200   # the README's run
    python benchmarks/alpro_vtm_probe.py --arms fusion frozen --steps 500 # encoders held still or not
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu
from torch.utils.data import DataLoader

from vlstudy.data.datasets import collate_videos
from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.tasks.common import load_split, seeded_generator, video_dataset
from vlstudy.tasks.pretrain_alpro import VTM_PRIOR_LOSS, PretrainALPROConfig
from vlstudy.tasks.pretrain_mplug_video import split_pool

ARMS = {"random": "VTM alone on random negatives", "hard": "VTM alone on hard negatives (ALPRO's)",
        "frozen": "VTM alone on the checkpoint's hard negatives (drawn by its VTC, which does not move)",
        "joint": "MLM + VTC + VTM summed (pre-training's loss)",
        "fusion": "fresh fusion layers + ITM head alone on the frozen encoders, checkpoint's hard negatives"}


def vtc_similarity(model, video_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    video_feat = model.contrastive.project_video(video_embeds[:, 0])
    text_feat = model.contrastive.project_text(text_embeds[:, 0])
    return video_feat @ text_feat.T / model.contrastive.temp


def vtm_logits(model, batch, negatives: str, seed: int, picker=None) -> tuple[torch.Tensor, torch.Tensor]:
    """ITM logits (3B, 2) and labels (3B,) of ALPRO's `matching_logits`: B positives, B (text, negative video), B
    (negative text, video). Negatives "hard": drawn from the model's own VTC softmax, as pre-training does;
    "frozen": from the VTC softmax of `picker` (the checkpoint, not trained here: the negatives that were hard at
    the start stay the ones asked about); "random": from a constant similarity, i.e. uniformly among the batch's
    other items."""
    ids, mask = model.tokenize(list(batch["title"]))
    video_embeds, text_embeds = model.encode_video(batch["video"]), model.encode_text(ids, mask)
    if negatives == "hard":
        similarity = vtc_similarity(model, video_embeds, text_embeds)
    elif negatives == "frozen":
        with torch.no_grad():
            similarity = vtc_similarity(picker, picker.encode_video(batch["video"]), picker.encode_text(ids, mask))
    else:
        similarity = torch.zeros(len(ids), len(ids))
    return model.matching_logits(video_embeds, text_embeds, mask, similarity, seeded_generator(batch["index"], seed))


@torch.no_grad()
def evaluate(model, loader, seed: int, picker) -> dict[str, float]:
    was_training = model.training
    model.eval()
    out = {}
    for name in ("random", "hard", "frozen"):
        logits, labels = zip(*(vtm_logits(model, b, name, seed, picker) for b in loader))
        logits, labels = torch.cat(logits), torch.cat(labels)
        margin = (logits[:, 1] - logits[:, 0]).numpy()
        out[f"{name}_loss"] = F.cross_entropy(logits, labels).item()
        positive = labels.numpy() == 1
        out[f"{name}_auc"] = mannwhitneyu(margin[positive], margin[~positive]).statistic / positive.sum() / (~positive).sum()
    model.train(was_training)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init", default="checkpoints/pretrain_alpro/model")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--val", type=int, default=200, help="held-out pool videos (the stage's split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()

    config = PretrainALPROConfig()
    torch.manual_seed(args.seed)
    base = ALPROForPretraining.from_pretrained(args.init)
    train_records, val_records = split_pool(load_split(args.data, "pretrain", "pool"), config.val_videos, args.seed)
    encoder = base.config.video
    train_set = video_dataset(train_records, encoder, config.decode, "train", args.seed, ".vlstudy/cache", ("title",))
    val_set = video_dataset(val_records.head(args.val), encoder, config.decode, "eval", args.seed, ".vlstudy/cache",
                            ("title",))
    val_loader = DataLoader(val_set, batch_size=32, collate_fn=collate_videos)
    print(f"label prior loss {VTM_PRIOR_LOSS:.3f}; AUC 0.5 = no signal")
    base.eval()
    print(f"pre-trained checkpoint: {evaluate(base, val_loader, args.seed, base)}")
    model = copy.deepcopy(base).train()
    batch = collate_videos([train_set[i] for i in range(32)])
    ids, mask = model.tokenize(list(batch["title"]))
    terms = model.pretrain_losses(batch["video"], ids, mask, seeded_generator(batch["index"], args.seed))
    norms = {}
    for name in ("vtc", "vtm", "mlm"):
        grads = torch.autograd.grad(terms[name], [p for p in model.parameters() if p.requires_grad],
                                    retain_graph=True, allow_unused=True)
        norms[name] = round(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)).item(), 3)
    print(f"joint pre-training (ALPRO's sum) on one batch: losses "
          f"{ {k: round(v.item(), 3) for k, v in terms.items()} }, gradient norm of each term {norms}")
    for arm in args.arms:
        model = copy.deepcopy(base).train()
        if arm == "fusion":
            fresh = ALPROForPretraining(base.config, base.tokenizer)  # the seeded generator's next draws
            model.fusion_encoder, model.itm_head = fresh.fusion_encoder, fresh.itm_head
            for module in (model.video_encoder, model.text_encoder, model.contrastive):
                module.requires_grad_(False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                      weight_decay=0.05)
        loader = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate_videos, drop_last=True,
                            generator=torch.Generator().manual_seed(args.seed))
        step, t0 = 0, time.time()
        while step < args.steps:
            for batch in loader:
                if batch["video"] is None:
                    continue
                if arm == "fusion":  # the encoders stay as the checkpoint left them: no dropout, no gradient
                    model.video_encoder.eval()
                    model.text_encoder.eval()
                if arm == "joint":  # all three objectives, summed, as pre-training does
                    ids, mask = model.tokenize(list(batch["title"]))
                    loss = model.pretrain_losses(batch["video"], ids, mask,
                                                 seeded_generator(batch["index"], args.seed))["loss"]
                else:
                    negatives = "frozen" if arm == "fusion" else arm
                    logits, labels = vtm_logits(model, batch, negatives, args.seed, base)
                    loss = F.cross_entropy(logits, labels)
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
                optimizer.step()
                step += 1
                if step % 50 == 0:
                    print(f"  {arm}, step {step}: train loss {loss.item():.3f}")
                if step >= args.steps:
                    break
        result = evaluate(model, val_loader, args.seed, base)
        print(f"{ARMS[arm]}, {args.steps} steps ({time.time() - t0:.0f} s): {result}")


if __name__ == "__main__":
    main()

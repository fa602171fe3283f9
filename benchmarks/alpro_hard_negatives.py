"""Are ALPRO's hard negatives on mini-Youku true non-matches? The data-design side of `alpro_vtm_probe.py`.

ALPRO's matching head (VTM) is trained on one hard negative each way, drawn from the softmax of the VTC
similarities within the batch. On mini-Youku a video *shows* only what its class and a few drawn cues decide:
the scene (or a neutral room), one moving object (the class's colour, shape and motion, or a grey distractor with
its own shape and motion) and day or night (`vlstudy.data.mini_youku.text`). Two videos of the same class with the
same drawn cues are the same picture up to the object's path; a title written for one is then equally true of the
other, and VTM is asked to call a true pair "no match".

For the held-out pool pairs of `pretrain_alpro` (the stage's split and evaluation batches; negatives drawn exactly
as the stage's `heldout_scores` draws them) this prints, for the text→video and the video→text negatives:

* the share of negatives with the positive's class, and with its whole design (class, scene shown, object shown,
  shape, motion, night: a picture the title describes equally well), for ALPRO's hard negatives and, as the
  baseline, for a negative drawn uniformly among the batch's other items (exact expectation);
* the checkpoint's matching AUC (match vs non-match logit margin) on the hard negatives that differ from the
  positive in design and on those that do not.

    python benchmarks/alpro_hard_negatives.py          # the default workspace's checkpoint, data and ground truth

Reads ``checkpoints/pretrain_alpro/model``, ``data/prepared`` and ``data/mini_youku/ground_truth.csv``; writes
nothing. A real release has no ground truth of what videos show, so this is a mini-Youku diagnostic only.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from scipy.stats import mannwhitneyu
from torch.utils.data import DataLoader

from vlstudy.data.datasets import collate_videos
from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.models.losses import sample_hard_negatives
from vlstudy.tasks.common import load_split, seeded_generator, video_dataset
from vlstudy.tasks.pretrain_alpro import PretrainALPROConfig
from vlstudy.tasks.pretrain_video import split_pool

DESIGN = ["label", "scene_shown", "object_shown", "shape", "motion", "night"]  # what a video shows, by design


@torch.no_grad()
def draw(model: ALPROForPretraining, loader: DataLoader, seed: int) -> pd.DataFrame:
    """One row per held-out pair and direction: the item, its hard negative, the uniform chance of a same-class /
    same-design negative in its batch, and the ITM margin of the pair and of the negative pair."""
    rows = []
    for batch in loader:
        ids, mask = model.tokenize(list(batch["title"]))
        video_embeds, text_embeds = model.encode_video(batch["video"]), model.encode_text(ids, mask)
        video_feat = model.contrastive.project_video(video_embeds[:, 0])
        text_feat = model.contrastive.project_text(text_embeds[:, 0])
        similarity = video_feat @ text_feat.T / model.contrastive.temp
        logits, _ = model.matching_logits(video_embeds, text_embeds, mask, similarity,
                                          seeded_generator(batch["index"], seed))  # (3B, 2): the stage's draws
        # the same draws again (a fresh generator of the same seed, drawn in the same order): which items
        generator = seeded_generator(batch["index"], seed)
        negative_video = sample_hard_negatives(similarity.T, generator).tolist()
        negative_text = sample_hard_negatives(similarity, generator).tolist()
        margin = (logits[:, 1] - logits[:, 0]).view(3, -1)  # (3, B): pair, text + negative video, negative text + video
        ids_ = list(batch["video_id"])
        for i, item in enumerate(ids_):
            others = [j for j in range(len(ids_)) if j != i]
            for direction, negative, row in (("text→video", negative_video[i], 1), ("video→text", negative_text[i], 2)):
                rows.append({"video_id": item, "negative_id": ids_[negative], "direction": direction,
                             "others": [ids_[j] for j in others], "pair_margin": float(margin[0, i]),
                             "negative_margin": float(margin[row, i])})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init", default="checkpoints/pretrain_alpro/model")
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--truth", default="data/mini_youku/ground_truth.csv")
    args = parser.parse_args()

    config = PretrainALPROConfig()
    torch.manual_seed(config.seed)
    model = ALPROForPretraining.from_pretrained(args.init).eval()
    _, val_records = split_pool(load_split(args.data, "pretrain", "pool"), config.val_videos, config.seed)
    val_set = video_dataset(val_records, model.config.video, config.decode, "eval", config.seed, ".vlstudy/cache",
                            ("title", "video_id"))
    loader = DataLoader(val_set, batch_size=config.eval_batch_size, collate_fn=collate_videos)
    table = draw(model, loader, config.seed)

    truth = pd.read_csv(args.truth, usecols=["video_id", *DESIGN]).set_index("video_id")
    design = {vid: tuple(row) for vid, row in zip(truth.index, truth[DESIGN].itertuples(index=False))}
    label = {vid: key[0] for vid, key in design.items()}
    table["same_class"] = [label[a] == label[b] for a, b in zip(table.video_id, table.negative_id)]
    table["same_design"] = [design[a] == design[b] for a, b in zip(table.video_id, table.negative_id)]
    table["uniform_same_class"] = [np.mean([label[o] == label[a] for o in others])
                                   for a, others in zip(table.video_id, table.others)]
    table["uniform_same_design"] = [np.mean([design[o] == design[a] for o in others])
                                    for a, others in zip(table.video_id, table.others)]
    print(f"{len(val_records)} held-out pool pairs, evaluation batches of {config.eval_batch_size}; "
          f"{len(truth)} ground-truth rows")
    for direction, part in table.groupby("direction"):
        print(f"\n{direction} negatives ({len(part)}):")
        print(f"  same class as the positive:  hard {100 * part.same_class.mean():5.1f} %   "
              f"uniform {100 * part.uniform_same_class.mean():5.1f} %")
        print(f"  same design (equally true):  hard {100 * part.same_design.mean():5.1f} %   "
              f"uniform {100 * part.uniform_same_design.mean():5.1f} %")
    pairs = table.drop_duplicates("video_id").pair_margin.to_numpy()
    for name, part in (("a different design", table[~table.same_design]), ("the same design", table[table.same_design])):
        if len(part):
            auc = mannwhitneyu(pairs, part.negative_margin).statistic / len(pairs) / len(part)
            print(f"matching AUC, positives vs hard negatives of {name} ({len(part)}): {auc:.3f}")


if __name__ == "__main__":
    main()

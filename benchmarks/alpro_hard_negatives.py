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
* the share of negatives of which the positive's *title* is true (`false_claims` empty): every fact the title states
  (a class keyword, the subject and activity, the object's colour and shape, its motion, the place, the format
  wording) holds of the other video too. Such a pair is a true match as far as the text can tell, whatever the
  two videos look like; a model that reads the title perfectly still calls it a match. A pool title names the
  object and its motion in 3 of 4 titles and never the time of day, so a different design does not make the
  title false;
* for the negatives of which the title is false, what it states falsely (the class's keyword, subject or wording,
  the place, the object, its motion);
* the checkpoint's matching AUC (match vs non-match logit margin) on the hard negatives that differ from the
  positive in design and on those that do not, on those of which the title is false and true, and on the false
  ones split by whether only the object or its motion (the hard visual cues) tells the pair apart.

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
from vlstudy.data.mini_youku.text import Cues, where
from vlstudy.data.mini_youku.world import GROUPS, MOTIONS
from vlstudy.models.alpro import ALPROForPretraining
from vlstudy.models.losses import sample_hard_negatives
from vlstudy.tasks.common import load_split, seeded_generator, video_dataset
from vlstudy.tasks.pretrain_alpro import PretrainALPROConfig
from vlstudy.tasks.pretrain_mplug_video import split_pool

DESIGN = ["label", "scene_shown", "object_shown", "shape", "motion", "night"]  # what a video shows, by design


def cues_of(row) -> Cues:
    """A video's drawn cues from its ground-truth row (the title cues are not needed to read a title)."""
    return Cues(int(row.label), bool(row.scene_shown), bool(row.object_shown), False, False, row.shape, row.motion,
                bool(row.night))


def title_claims(title: str, cues: Cues) -> list[tuple[str, str]]:
    """The facts a pool title of the video with `cues` states (`vlstudy.data.mini_youku.text.pool_title`), found
    in its text: (kind, words) for a class keyword, subject + activity, object, motion phrase, place, wording."""
    d = cues.design
    claims = [("keyword", k) for k in d.keywords if f"【{k}】" in title]
    claims += [(kind, words) for kind, words in (("subject", d.subject + d.activity), ("object", cues.object_words),
                                                 ("place", where(cues))) if words in title]
    claims += [("motion", m) for m in MOTIONS[cues.motion] if m in title]
    claims += [("wording", w) for w in GROUPS[d.group]["phrases"] if w in title]
    return claims


def claim_holds(kind: str, words: str, cues: Cues) -> bool:
    """Whether one stated fact is true of the video with `cues`."""
    d = cues.design
    return {"keyword": words in d.keywords, "subject": words == d.subject + d.activity,
            "object": words == cues.object_words, "place": words == where(cues),
            "motion": words in MOTIONS[cues.motion], "wording": words in GROUPS[d.group]["phrases"]}[kind]


def false_claims(title: str, own: Cues, other: Cues) -> set[str]:
    """The kinds of fact that the title written for the video with cues `own` states falsely of the video with cues
    `other` (empty: the title is true of it)."""
    return {kind for kind, words in title_claims(title, own) if not claim_holds(kind, words, other)}


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
                # the title of the negative pair: the item's own (text→video) or the negative's (video→text)
                title_of = item if direction == "text→video" else ids_[negative]
                rows.append({"video_id": item, "negative_id": ids_[negative], "direction": direction,
                             "others": [ids_[j] for j in others], "pair_margin": float(margin[0, i]),
                             "negative_margin": float(margin[row, i]), "title_of": title_of,
                             "title": batch["title"][ids_.index(title_of)]})
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
    cues = {vid: cues_of(row) for vid, row in zip(truth.index, truth.itertuples(index=False))}
    titles = dict(zip(val_records.video_id, val_records.title))
    # the video the title is paired with in the negative pair: the negative (text→video) or the item (video→text)
    table["false"] = [false_claims(t, cues[own], cues[neg if own == vid else vid])
                      for t, own, vid, neg in zip(table.title, table.title_of, table.video_id, table.negative_id)]
    table["title_fits"] = [not f for f in table["false"]]
    table["uniform_title_fits"] = [
        np.mean([not (false_claims(titles[a], cues[a], cues[o]) if d == "text→video" else
                      false_claims(titles[o], cues[o], cues[a])) for o in others])
        for a, others, d in zip(table.video_id, table.others, table.direction)]
    own_fit = np.mean([not false_claims(titles[v], cues[v], cues[v]) for v in val_records.video_id])
    stated = pd.Series([k for v in val_records.video_id for k, _ in title_claims(titles[v], cues[v])]).value_counts()
    print(f"{len(val_records)} held-out pool pairs, evaluation batches of {config.eval_batch_size}; "
          f"{len(truth)} ground-truth rows; each title true of its own video: {100 * own_fit:.1f} %")
    print("facts the held-out titles state (titles stating each kind, of " f"{len(val_records)}): "
          + ", ".join(f"{k} {n}" for k, n in stated.items()))
    for direction, part in table.groupby("direction"):
        print(f"\n{direction} negatives ({len(part)}):")
        print(f"  same class as the positive:  hard {100 * part.same_class.mean():5.1f} %   "
              f"uniform {100 * part.uniform_same_class.mean():5.1f} %")
        print(f"  same design (equally true):  hard {100 * part.same_design.mean():5.1f} %   "
              f"uniform {100 * part.uniform_same_design.mean():5.1f} %")
        print(f"  the title is true of both:   hard {100 * part.title_fits.mean():5.1f} %   "
              f"uniform {100 * part.uniform_title_fits.mean():5.1f} %")
    wrong = table[~table.title_fits]
    print(f"\nhard negatives whose title is false ({len(wrong)}), by what it states falsely (a title may state "
          "several false facts):")
    for kind in ("keyword", "subject", "wording", "place", "object", "motion"):
        print(f"  {kind:8s} {100 * np.mean([kind in f for f in wrong['false']]):5.1f} %")
    # the object and its motion are the hard visual cues (`world`): a small moving shape, its motion only seen
    # across frames; the scene (the place) and the class's easy cues are seen in any single frame
    only_object = wrong["false"].map(lambda f: f <= {"object", "motion"})
    pairs = table.drop_duplicates("video_id").pair_margin.to_numpy()
    for name, part in (("a different design", table[~table.same_design]), ("the same design", table[table.same_design]),
                       ("a false title", wrong), ("a title true of both", table[table.title_fits]),
                       ("a title false only on the object or its motion", wrong[only_object]),
                       ("a title false on the class, wording or place", wrong[~only_object]),
                       ("a title false on the place (the scene: seen in any frame)",
                        wrong[wrong["false"].map(lambda f: "place" in f)])):
        if len(part):
            auc = mannwhitneyu(pairs, part.negative_margin).statistic / len(pairs) / len(part)
            print(f"matching AUC, positives vs hard negatives of {name} ({len(part)}): {auc:.3f}")


if __name__ == "__main__":
    main()

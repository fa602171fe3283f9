"""Benchmark ``caption_metrics`` against calling the pycocoevalcap scorers directly on the same inputs.

Figures, from one run on the same generated corpus (default 2,000 items of Chinese captions, 1-3 references
each, predictions of mixed quality, a few empty):

1. max |ours - direct| over the seven corpus scores (x100) and over every per-item score: must be 0 (up to
   float rounding, < 1e-9);
2. time ratio ours / direct, target <= 1.1x. The direct path is what the official script needs at least:
   normalise every caption, then ``Bleu(4)``, ``Meteor``, ``Rouge``, ``Cider`` ``compute_score``. Ours adds
   input validation, keeping per-item statistics, the per-item table and the check that every bootstrap
   statistic reproduces its headline. Both use the same running METEOR JVM, so its start-up (printed
   separately) is excluded from both. The two take turns, alternating which goes first; each keeps its fastest of
   ``--repeats`` passes.

Usage:
    python benchmarks/caption_metrics.py [--items 2000] [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from vlstudy.metrics.captioning import CAPTION_METRICS, caption_metrics, normalize_caption

SUBJECTS = ["一个男人", "一位女士", "小女孩", "一只小狗", "两只猫", "老师", "厨师", "一群学生"]
ACTIONS = ["在公园里跑步", "在厨房做菜", "在草地上玩球", "在舞台上唱歌", "在教室讲课", "在街道上骑车", "在沙发上睡觉"]
DETAILS = ["，阳光很好。", "，背景是高楼。", "，旁边有很多人。", "。", "，镜头慢慢拉近。", "，画面很温馨！"]


def make_corpus(n_items: int, rng: np.random.Generator) -> tuple[dict[str, str], dict[str, list[str]]]:
    """`n_items` predictions and 1-3 references each; about 1% of predictions have no CJK character."""
    def sentence() -> str:
        return rng.choice(SUBJECTS) + rng.choice(ACTIONS) + rng.choice(DETAILS)

    predictions, references = {}, {}
    for i in range(n_items):
        refs = [sentence() for _ in range(rng.integers(1, 4))]
        references[f"v{i:05d}"] = refs
        roll = rng.random()
        predictions[f"v{i:05d}"] = ("OK!" if roll < 0.01 else refs[0] if roll < 0.2 else sentence())
    return predictions, references


def direct_scores(meteor: Meteor, predictions: dict[str, str], references: dict[str, list[str]]):
    """The baseline: normalise, then the four scorers' compute_score. Returns {name: (corpus, per-item)}."""
    gts = {k: [normalize_caption(r) for r in refs] for k, refs in references.items()}
    res = {k: [normalize_caption(predictions[k])] for k in references}
    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n + 1}": (bleu[n], bleu_items[n]) for n in range(4)}
    scores["METEOR"] = meteor.compute_score(gts, res)
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)
    scores["CIDEr"] = Cider().compute_score(gts, res)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    predictions, references = make_corpus(args.items, np.random.default_rng(args.seed))

    start = time.perf_counter()
    meteor = Meteor()
    meteor.compute_score({"warm-up": ["猫"]}, {"warm-up": ["猫"]})
    print(f"METEOR JVM start (excluded from both timings): {time.perf_counter() - start:.1f} s")

    ours_times, direct_times = [], []
    for repeat in range(args.repeats):  # alternate which goes first: the JVM's JIT keeps warming up
        for which in (("direct", "ours") if repeat % 2 == 0 else ("ours", "direct")):
            start = time.perf_counter()
            if which == "direct":
                direct = direct_scores(meteor, predictions, references)
                direct_times.append(time.perf_counter() - start)
            else:
                ours = caption_metrics(predictions, references, meteor=meteor)
                ours_times.append(time.perf_counter() - start)

    corpus_diff = max(abs(ours.summary[name] - 100 * float(direct[name][0])) for name in CAPTION_METRICS)
    item_diff = max(float(np.max(np.abs(ours.per_item[name].to_numpy() - 100 * np.asarray(direct[name][1],
                                                                                           dtype=float))))
                    for name in CAPTION_METRICS)
    print(f"{args.items} items, {sum(map(len, references.values()))} references, "
          f"{int(ours.summary['n_empty_predictions'])} empty predictions")
    print("scores (x100): " + ", ".join(f"{name} {ours.summary[name]:.2f}" for name in CAPTION_METRICS))
    print(f"max |ours - direct|: corpus scores {corpus_diff:.3g}, per-item scores {item_diff:.3g}")
    print(f"time: direct {min(direct_times):.2f} s, ours {min(ours_times):.2f} s, "
          f"ratio {min(ours_times) / min(direct_times):.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()

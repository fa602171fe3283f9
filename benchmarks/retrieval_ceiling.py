"""Table 5 on mini-Youku: how much retrieval the data allows, and how much of it each model reaches.

Table 5's orderings (mPLUG-2 > ALPRO > mPLUG-video on text→video R@1) fail in the study: every dual encoder ends
at about the same R@1 (8.7–9.7 % of 300 val videos). Two readings are possible. Either mini-Youku's captions cannot
tell its videos apart much better than that, so any model is capped near there and the comparison is compressed;
or the data allows far more and all three models are equally far from it. This script measures the cap.

A retrieval caption states, by construction (`vlstudy.data.mini_youku.text.caption`), the class's subject and
activity, the place (the class's scene, or 室内 when no scene is shown), the object's colour and shape (the class's
object, or a grey distractor with its own shape) and its motion; never the time of day. A caption is therefore
*consistent* with every val video of the same class that shows the same scene-or-not, object-or-not, shape and
motion (the ground truth's columns). A perfect recogniser of the designed cues ranks the m videos consistent with
a caption first, in an order it cannot do better than guess: its expected text→video R@1 is the mean of 1 / m, and
ties broken at random (averaged over draws) give its other metrics. The same for a recogniser of the class alone
(consistent = same class): what reading only the subject of a caption gives.

Beside the two ceilings it prints the committed Table 5 numbers of every score set
(``reports/metrics/finetune_retrieval@*.json``), with the share of the designed ceiling each reaches.

    python benchmarks/retrieval_ceiling.py

Reads ``data/prepared`` (the retrieval val split, as ``finetune_retrieval`` evaluates it) and
``data/mini_youku/ground_truth.csv``; writes nothing; seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from vlstudy.metrics.retrieval import retrieval_metrics
from vlstudy.tasks.common import load_split

CAPTION_FACTS = ("label", "scene_shown", "object_shown", "shape", "motion")  # what a caption states (no night)
SHOWN = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR")


def consistent(truth: pd.DataFrame, facts: tuple[str, ...]) -> np.ndarray:
    """(V, V) bool: the caption of video i is consistent with video j (every fact in `facts` equal)."""
    columns = [truth[c].astype(str).to_numpy() for c in facts]  # CSV booleans read as bools or "True"/"False"
    return np.logical_and.reduce([c[:, None] == c[None, :] for c in columns])


def ceiling(match: np.ndarray, rng: np.random.Generator, draws: int) -> dict[str, float]:
    """Text→video metrics of a recogniser that scores consistent videos 1, others 0, guessing among ties: the
    mean over `draws` random tie-breaks, and R@1 in closed form (mean of 1 / m)."""
    texts = np.arange(len(match))
    runs = [retrieval_metrics(match + rng.uniform(0, 0.5, match.shape), texts).summary for _ in range(draws)]
    summary = {k: float(np.mean([r[k] for r in runs])) for k in SHOWN}
    summary["t2v_R@1 (closed form)"] = 100 * float(np.mean(1 / match.sum(axis=1)))
    summary["consistent videos per caption"] = float(match.sum(axis=1).mean())
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/prepared")
    parser.add_argument("--ground-truth", default="data/mini_youku/ground_truth.csv")
    parser.add_argument("--draws", type=int, default=50, help="random tie-breaks averaged")
    args = parser.parse_args()
    records = load_split(args.data, "retrieval", "val")
    if any(len(c) != 1 for c in records["captions"]):
        raise ValueError("this ceiling assumes one caption per val video, as mini-Youku's retrieval split has")
    truth = pd.read_csv(args.ground_truth).drop_duplicates("video_id").set_index("video_id")
    truth = truth.loc[records["video_id"]].reset_index()
    rng = np.random.default_rng(0)
    rows = {"designed ceiling (every fact a caption states)": ceiling(consistent(truth, CAPTION_FACTS), rng,
                                                                      args.draws),
            "class only (the caption's subject)": ceiling(consistent(truth, ("label",)), rng, args.draws)}
    print(f"retrieval val: {len(records)} videos, one caption each; {truth['label'].nunique()} classes")
    for name, summary in rows.items():
        print(f"  {name}: " + ", ".join(f"{k} {summary[k]:.1f}" for k in (*SHOWN, "t2v_R@1 (closed form)",
                                                                         "consistent videos per caption")))
    top = rows["designed ceiling (every fact a caption states)"]["t2v_R@1"]
    print("\ncommitted Table 5 (reports/metrics/finetune_retrieval@*.json), text→video:")
    for path in sorted(Path("reports/metrics").glob("finetune_retrieval@*.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        for score_set, values in metrics.items():
            if isinstance(values, dict) and "t2v_R@1" in values:
                share = 100 * values["t2v_R@1"]["estimate"] / top
                print(f"  {path.stem.split('@')[1]:17s} {score_set:11s} " + ", ".join(
                    f"{k} {values[k]['estimate']:.1f}" for k in SHOWN) + f"  ({share:.0f} % of the ceiling's R@1)")


if __name__ == "__main__":
    main()

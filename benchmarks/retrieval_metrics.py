"""Benchmark ``retrieval_metrics`` on full-size similarity matrices (target: <= 1 s for 7,414 x 7,414).

Cases (random float32 scores, seeded; 7,414 is the size the target names):

1. 7,414 texts x 7,414 videos, one text per video;
2. 7,415 texts x 1,483 videos, five texts per video;
3. 37,070 texts x 7,414 videos, five texts per video (for scale; no target).

For each: the fastest of ``--repeats`` calls of ``retrieval_metrics`` (all metrics both ways, input checks
included). As a baseline measured in the same run, case 1 also times the official ``itm_eval`` loop
(X-PLUG/Youku-mPLUG ``downstream/run_retrieval_distributed_gpt3.py``: one ``argsort`` per query), prints the
speed-up, and checks that both give the same R@K (random scores have no ties, where the conventions agree).
Finally the 95% bootstrap intervals of all ten headline numbers (1,000 resamples) are timed on case 1.

Usage:
    python benchmarks/retrieval_metrics.py [--repeats 3] [--seed 0] [--skip-official]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vlstudy.metrics.bootstrap import metric_intervals
from vlstudy.metrics.retrieval import retrieval_metrics


def official_itm_eval(scores_v2t: np.ndarray, scores_t2v: np.ndarray, txt2vid: np.ndarray,
                      vid2txt: list[np.ndarray]) -> dict[str, float]:
    """The official loop (0-based ranks, R@K = share of rank < K), kept to its logic."""
    ranks = np.zeros(scores_v2t.shape[0])
    for index, score in enumerate(scores_v2t):
        inds = np.argsort(score)[::-1]
        ranks[index] = min(np.where(inds == i)[0][0] for i in vid2txt[index])
    result = {f"v2t_R@{k}": 100.0 * float(np.mean(ranks < k)) for k in (1, 5, 10)}
    ranks = np.zeros(scores_t2v.shape[0])
    for index, score in enumerate(scores_t2v):
        inds = np.argsort(score)[::-1]
        ranks[index] = np.where(inds == txt2vid[index])[0][0]
    result.update({f"t2v_R@{k}": 100.0 * float(np.mean(ranks < k)) for k in (1, 5, 10)})
    return result


def fastest(repeats: int, fn):
    """(fastest wall time in s, last result) of `repeats` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def make_case(num_videos: int, texts_per_video: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scores with some signal on the ground truth, so ranks spread over the whole range."""
    text_to_video = np.repeat(np.arange(num_videos), texts_per_video)
    similarity = rng.standard_normal((len(text_to_video), num_videos), dtype=np.float32)
    similarity[np.arange(len(text_to_video)), text_to_video] += 2.5
    return similarity, text_to_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-official", action="store_true", help="do not time the official loop (~1 min)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    for num_videos, per_video, target in ((7414, 1, 1.0), (1483, 5, 1.0), (7414, 5, None)):
        similarity, text_to_video = make_case(num_videos, per_video, rng)
        seconds, result = fastest(args.repeats, lambda: retrieval_metrics(similarity, text_to_video))
        goal = f" (target <= {target:.0f} s)" if target else ""
        print(f"{similarity.shape[0]:>6} texts x {num_videos:>5} videos ({per_video}/video): {seconds:.3f} s{goal}; "
              f"t2v R@1 {result.summary['t2v_R@1']:.2f}, v2t R@1 {result.summary['v2t_R@1']:.2f}")
        if num_videos == 7414 and per_video == 1:
            case_one = result
            if not args.skip_official:
                vid2txt = [np.array([v]) for v in range(num_videos)]
                start = time.perf_counter()
                official = official_itm_eval(similarity.T, similarity, text_to_video, vid2txt)
                official_seconds = time.perf_counter() - start
                agree = max(abs(official[k] - result.summary[k]) for k in official)
                print(f"    official itm_eval loop: {official_seconds:.1f} s, "
                      f"speed-up {official_seconds / seconds:.0f}x, max |R@K difference| {agree:.3g}")

    start = time.perf_counter()
    metric_intervals(case_one, rng=np.random.default_rng(args.seed), n_boot=1000)
    print(f"95% bootstrap intervals of {len(case_one.statistics)} metrics, 1,000 resamples of 7,414 videos: "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()

"""Video captioning metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr on character-level Chinese, as Youku-mPLUG.

Protocol (X-PLUG/Youku-mPLUG, ``downstream/run_caption_distributed_gpt3.py``, ``normalize`` and
``cal_metric``): every caption, prediction and reference alike, is normalised by deleting every character
outside ``[\\u4e00-\\u9fa5]`` (CJK ideographs: Latin letters, digits and punctuation all go) and joining the
remaining characters with single spaces, so all metrics work on characters. The official script then runs
pycocoevalcap's ``COCOEvalCap`` (PTB tokenizer, then Bleu(4), Meteor, Rouge, Cider, Spice). Here the four
scorers are called directly on the normalised text:

* no SPICE: meaningless for Chinese, and offline the stock ``COCOEvalCap.evaluate`` crashes building it
  (it downloads Stanford CoreNLP);
* no PTB tokenizer: normalised text is already one token per character, and the tokenizer leaves it
  unchanged (tested in ``tests/test_metrics_captioning.py``), so skipping it changes no score.

Values are reported x100 (see ``base.py``). Besides the corpus scores, every item keeps its sentence scores,
and the corpus-level BLEU and METEOR keep their per-item sufficient statistics, so the bootstrap can resample
items and recompute the *corpus* score (see ``bootstrap.py``). For that, two scorers are driven one level
below their ``compute_score`` wrappers, with identical results:

* BLEU: ``BleuScorer`` is filled and scored exactly as ``Bleu.compute_score`` does (option "closest"), and its
  cooked per-item counts are kept;
* METEOR: the jar is driven with the same two-step protocol as ``Meteor.compute_score`` (one ``SCORE`` line
  per item via pycocoevalcap's ``Meteor._stat``, then one ``EVAL`` line), keeping the statistics lines that
  ``compute_score`` throws away. The corpus formula of the METEOR 1.5 jar (``MeteorStats.addStats`` +
  ``MeteorScorer.computeMetrics``, English "rank" task parameters) is re-implemented in numpy for the
  bootstrap, and checked against the jar on every call (``MetricResult`` verifies that each statistic
  reproduces its headline).

METEOR starts a JVM (~9 s). One instance per process is enough: :func:`shared_meteor` creates it on first use
and reuses it; :func:`close_shared_meteor` stops it (also registered to run at exit).

Empty predictions (nothing left after normalisation, e.g. "" or "OK!") are kept, not dropped: they are passed to
the scorers as empty strings, which every scorer scores 0 (BLEU's brevity penalty, METEOR's 0 precision,
ROUGE-L's empty LCS, CIDEr's empty n-gram vector), and in corpus BLEU and METEOR their reference lengths count,
exactly like a prediction that matches nothing. The summary reports how many there were
(``n_empty_predictions``) and a warning is logged.
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from vlstudy.metrics.base import ID_COLUMN, Mean, MetricError, MetricResult

__all__ = ["normalize_caption", "caption_metrics", "shared_meteor", "close_shared_meteor", "CorpusBleu",
           "CorpusMeteor", "CAPTION_METRICS"]

log = logging.getLogger(__name__)

CAPTION_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
_NON_CJK = re.compile("[^\u4e00-\u9fa5]+")  # the official normalize(): the CJK Unified Ideographs it keeps
_BLEU_ORDER = 4
_BLEU_TINY, _BLEU_SMALL = 1e-15, 1e-9  # pycocoevalcap BleuScorer's guards against 0/0, reproduced exactly


def normalize_caption(text: str) -> str:
    """Youku-mPLUG's caption normalisation: keep CJK ideographs only, one space between characters.

    >>> normalize_caption("一个男人，在跑步! OK 2")
    '一 个 男 人 在 跑 步'
    """
    return " ".join(_NON_CJK.sub("", text))


# ---------------------------------------------------------------------------------------------- METEOR JVM
_shared_meteor: Meteor | None = None


def shared_meteor() -> Meteor:
    """This process's METEOR scorer (pycocoevalcap ``Meteor``), started on first use and then reused.

    Raises:
        RuntimeError: no ``java`` on PATH (install a JRE, e.g. openjdk, as environment.yml does).
    """
    global _shared_meteor
    if _shared_meteor is None or _shared_meteor.meteor_p.poll() is not None:
        if shutil.which("java") is None:
            raise RuntimeError("METEOR needs a Java runtime: no `java` on PATH (install openjdk)")
        _shared_meteor = Meteor()
        atexit.unregister(close_shared_meteor)
        atexit.register(close_shared_meteor)
    return _shared_meteor


def close_shared_meteor() -> None:
    """Stop the shared METEOR JVM, if one is running (idempotent)."""
    global _shared_meteor
    if _shared_meteor is None:
        return
    process = _shared_meteor.meteor_p
    with _shared_meteor.lock:
        process.stdin.close()
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
    _shared_meteor = None


# ---------------------------------------------------------------------------------------------- corpus statistics
class CorpusBleu:
    """Corpus BLEU-n (x100) from per-item n-gram statistics, pycocoevalcap's formula (``BleuScorer.compute_score``).

    Args:
        stats: (N, 2 + 2 * 4) per item: hypothesis length, closest reference length, n-gram counts of the
            hypothesis for n = 1..4, clipped n-gram matches for n = 1..4.
        order: n, 1..4.
    """

    def __init__(self, stats: np.ndarray, order: int):
        self.stats = np.asarray(stats, dtype=np.float64)
        self.order = order
        self.n_units = len(self.stats)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        sums = weights @ self.stats  # (B, 10)
        test_len, ref_len = sums[:, 0], sums[:, 1]
        guess, correct = sums[:, 2:2 + _BLEU_ORDER], sums[:, 2 + _BLEU_ORDER:]
        precision = np.cumprod((correct + _BLEU_TINY) / (guess + _BLEU_SMALL), axis=1)[:, self.order - 1]
        bleu = precision ** (1.0 / self.order)
        ratio = (test_len + _BLEU_TINY) / (ref_len + _BLEU_SMALL)
        brevity = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
        return 100.0 * bleu * brevity


# METEOR 1.5, English, default task "rank" (Constants.TASK_DEFAULT), as pycocoevalcap runs it (-l en -norm).
_METEOR_ALPHA, _METEOR_BETA, _METEOR_GAMMA, _METEOR_DELTA = 0.85, 0.2, 0.6, 0.75
_METEOR_MODULE_WEIGHTS = np.array([1.0, 0.6, 0.8, 0.6])  # exact, stem, synonym, paraphrase
_METEOR_STATS_LEN = 23  # 4 lengths, 4 modules x (test/ref content, test/ref function) matches, chunks, 2 word matches


class CorpusMeteor:
    """Corpus METEOR (x100) from the jar's per-item statistics lines, as its ``EVAL`` computes it.

    The jar sums the statistics over items (``MeteorStats.addStats``; an item that matches its reference
    perfectly in one chunk adds no chunk) and applies ``MeteorScorer.computeMetrics`` once.

    Args:
        stats: (N, 23) per-item statistics as printed by the jar: test length, reference length, test and
            reference function words, then for each of 4 modules (test content, reference content, test
            function, reference function) matches, then chunks, test word matches, reference word matches.
    """

    def __init__(self, stats: np.ndarray):
        stats = np.asarray(stats, dtype=np.float64)
        stages = stats[:, 4:20].reshape(-1, 4, 4)  # (N, module, [test content, ref content, test fn, ref fn])
        test_total = stages[:, :, 0].sum(1) + stages[:, :, 2].sum(1)
        ref_total = stages[:, :, 1].sum(1) + stages[:, :, 3].sum(1)
        chunks = stats[:, 20]
        perfect = (test_total == stats[:, 0]) & (ref_total == stats[:, 1]) & (chunks == 1)
        # columns summed over a resample: 4 lengths, 16 stage matches, totals, chunks (perfect items add 0), words
        self.stats = np.column_stack([stats[:, :4], stats[:, 4:20], test_total, ref_total,
                                      np.where(perfect, 0.0, chunks), stats[:, 21:23]])
        self.n_units = len(stats)

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        s = weights @ self.stats  # (B, 25)
        test_len, ref_len, test_fn, ref_fn = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        stages = s[:, 4:20].reshape(-1, 4, 4)
        test_total, ref_total, chunks, test_words, ref_words = s[:, 20], s[:, 21], s[:, 22], s[:, 23], s[:, 24]
        d, w = _METEOR_DELTA, _METEOR_MODULE_WEIGHTS
        test_matches = (stages[:, :, 0] @ w) * d + (stages[:, :, 2] @ w) * (1 - d)
        ref_matches = (stages[:, :, 1] @ w) * d + (stages[:, :, 3] @ w) * (1 - d)
        with np.errstate(divide="ignore", invalid="ignore"):  # the jar's 0/0 -> NaN -> score 0, mirrored below
            precision = test_matches / (d * (test_len - test_fn) + (1 - d) * test_fn)
            recall = ref_matches / (d * (ref_len - ref_fn) + (1 - d) * ref_fn)
            f_mean = 1.0 / ((1 - _METEOR_ALPHA) / precision + _METEOR_ALPHA / recall)
            single_chunk = (test_total == test_len) & (ref_total == ref_len) & (chunks == 1)
            fragmentation = np.where(single_chunk, 0.0, chunks / ((test_words + ref_words) / 2))
            score = f_mean * (1.0 - _METEOR_GAMMA * fragmentation ** _METEOR_BETA)
        return 100.0 * np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


# ---------------------------------------------------------------------------------------------- scorers
def _bleu(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[list[float], list[list[float]], np.ndarray]:
    """``Bleu(4).compute_score`` keeping per-item statistics: (corpus BLEU-1..4, sentence BLEU-1..4 lists, (N, 10))."""
    scorer = BleuScorer(n=_BLEU_ORDER)
    for i in gts:
        scorer += (res[i][0], gts[i])
    corpus, sentences = scorer.compute_score(option="closest", verbose=0)
    stats = np.empty((len(gts), 2 + 2 * _BLEU_ORDER))
    for row, cooked in enumerate(scorer.ctest):
        test_len = cooked["testlen"]
        closest_ref_len = min((abs(length - test_len), length) for length in cooked["reflen"])[1]  # option "closest"
        stats[row] = [test_len, closest_ref_len, *cooked["guess"], *cooked["correct"]]
    return corpus, sentences, stats


def _meteor(meteor: Meteor, gts: dict[int, list[str]], res: dict[int, list[str]]
            ) -> tuple[float, list[float], np.ndarray]:
    """``Meteor.compute_score`` keeping the per-item statistics lines: (corpus, sentence scores, (N, 23))."""
    with meteor.lock:
        lines = [meteor._stat(res[i][0], gts[i]) for i in gts]
        meteor.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(lines) + "\n").encode())
        meteor.meteor_p.stdin.flush()
        sentences = [float(meteor.meteor_p.stdout.readline().strip()) for _ in lines]
        corpus = float(meteor.meteor_p.stdout.readline().strip())
    stats = np.array([line.split() for line in lines], dtype=np.float64)
    if stats.shape[1:] != (_METEOR_STATS_LEN,):
        raise RuntimeError(f"unexpected METEOR statistics line {lines[0]!r}: expected {_METEOR_STATS_LEN} numbers "
                           "(METEOR 1.5 jar)")
    return corpus, sentences, stats


def _normalised_inputs(predictions: Mapping, references: Mapping) -> tuple[list, dict[int, list[str]],
                                                                            dict[int, list[str]]]:
    """Validate and normalise; returns (item keys, gts, res) with gts/res keyed by item position."""
    if not references:
        raise MetricError("no reference captions: nothing to evaluate")
    keys = list(references)
    missing = [k for k in keys if k not in predictions]
    if missing:
        raise MetricError(f"predictions missing for {len(missing)} of {len(keys)} items, e.g. "
                          f"{[str(k) for k in missing[:5]]}")
    unknown = [k for k in predictions if k not in references]
    if unknown:
        raise MetricError(f"predictions for {len(unknown)} ids that have no references, e.g. "
                          f"{[str(k) for k in unknown[:5]]}")
    gts, res = {}, {}
    for i, key in enumerate(keys):
        refs = references[key]
        if isinstance(refs, str) or not isinstance(refs, (Sequence, np.ndarray)) or len(refs) == 0:
            raise MetricError(f"item {str(key)!r}: references must be a non-empty list of strings, got {refs!r}")
        normalised = [normalize_caption(ref) if isinstance(ref, str) else "" for ref in refs]
        for j, ref in enumerate(normalised):
            if not ref:
                raise MetricError(f"item {str(key)!r}: reference {j} ({refs[j]!r}) has no CJK character")
        prediction = predictions[key]
        if not isinstance(prediction, str):
            raise MetricError(f"item {str(key)!r}: prediction must be a string, got {prediction!r}")
        gts[i] = normalised
        res[i] = [normalize_caption(prediction)]
    return keys, gts, res


def caption_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                    meteor: Meteor | None = None) -> MetricResult:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr (x100) of predicted captions against one or more references each.

    Args:
        predictions: item id -> predicted caption (raw text; normalised here).
        references: item id -> reference captions (raw; a list, tuple or 1-D array of at least one string each,
            e.g. the ``captions`` column of a record table). Defines the evaluated items.
        meteor: a running pycocoevalcap ``Meteor``; default :func:`shared_meteor`.

    Returns:
        MetricResult with summary ``BLEU-1``..``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr`` (corpus scores as
        pycocoevalcap computes them, x100), ``n_items`` and ``n_empty_predictions``; per_item columns
        ``item_id``, ``prediction`` (normalised), ``n_references``, ``empty_prediction`` and the sentence-level
        score of every metric (x100; sentence BLEU and METEOR do not average to the corpus scores).

    Raises:
        MetricError: predictions missing for some ids, predictions for unknown ids, a non-string prediction,
            an item without references or with a reference that has no CJK character (naming the item).
    """
    keys, gts, res = _normalised_inputs(predictions, references)
    empty = np.array([res[i][0] == "" for i in gts])
    if empty.any():
        log.warning("captioning: %d of %d predictions are empty after normalisation; they score 0 on every metric",
                    int(empty.sum()), len(keys))

    bleu_corpus, bleu_sentences, bleu_stats = _bleu(gts, res)
    meteor_corpus, meteor_sentences, meteor_stats = _meteor(meteor or shared_meteor(), gts, res)
    rouge_corpus, rouge_sentences = Rouge().compute_score(gts, res)
    cider_corpus, cider_sentences = Cider().compute_score(gts, res)

    per_item = pd.DataFrame({ID_COLUMN: [str(k) for k in keys], "prediction": [res[i][0] for i in gts],
                             "n_references": [len(gts[i]) for i in gts], "empty_prediction": empty})
    summary: dict[str, float] = {}
    statistics = {}
    for n in range(1, _BLEU_ORDER + 1):
        name = f"BLEU-{n}"
        per_item[name] = 100.0 * np.asarray(bleu_sentences[n - 1])
        summary[name] = 100.0 * bleu_corpus[n - 1]
        statistics[name] = CorpusBleu(bleu_stats, n)
    per_item["METEOR"] = 100.0 * np.asarray(meteor_sentences)
    summary["METEOR"] = 100.0 * meteor_corpus
    statistics["METEOR"] = CorpusMeteor(meteor_stats)
    for name, corpus, sentences in (("ROUGE-L", rouge_corpus, rouge_sentences),
                                    ("CIDEr", cider_corpus, cider_sentences)):
        per_item[name] = 100.0 * np.asarray(sentences, dtype=np.float64)
        summary[name] = 100.0 * float(corpus)
        statistics[name] = Mean(per_item[name].to_numpy())
    summary["n_items"] = len(keys)
    summary["n_empty_predictions"] = int(empty.sum())
    return MetricResult(summary=summary, per_item=per_item, statistics=statistics)

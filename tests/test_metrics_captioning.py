"""Caption metrics: official normalisation, identity with direct pycocoevalcap calls, known values, bad input.

One METEOR JVM (~9 s to start) serves the whole session through the ``meteor`` fixture, which starts it and
scores one item so that the start-up lands in the fixture; the tests that use it are marked slow.
"""

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from vlstudy.metrics.base import MetricError
from vlstudy.metrics.captioning import caption_metrics, close_shared_meteor, normalize_caption, shared_meteor

CHARS = "一个男人女孩小狗猫在草地上公园里跑步玩球吃饭唱歌跳舞厨房做菜汽车街道开过老师教室讲课"


@pytest.fixture(scope="session")
def meteor():
    instance = shared_meteor()
    instance.compute_score({"warm-up": ["猫"]}, {"warm-up": ["猫"]})
    yield instance
    close_shared_meteor()


def random_caption(rng, low=6, high=16):
    return "".join(rng.choice(list(CHARS), size=rng.integers(low, high)))


@pytest.fixture(scope="module")
def corpus():
    """40 items with 1-3 noisy references each and predictions of mixed quality, two of them empty."""
    rng = np.random.default_rng(0)
    references, predictions = {}, {}
    for i in range(40):
        refs = [random_caption(rng) + "。" for _ in range(rng.integers(1, 4))]
        references[f"v{i}"] = refs
        base = refs[0][:-1]
        keep = rng.random(len(base)) < 0.7
        predictions[f"v{i}"] = "".join(c for c, k in zip(base, keep) if k) + "，OK!" + random_caption(rng, 0, 4)
    predictions["v3"] = ""
    predictions["v7"] = "123 abc!"
    return predictions, references


def test_normalisation_is_the_official_one():
    assert normalize_caption("一个男人，在跑步! OK 2") == "一 个 男 人 在 跑 步"
    assert normalize_caption("（预告/杂谈）") == "预 告 杂 谈"
    # the official character class [\u4e00-\u9fa5] stops at U+9FA5: U+9FA6.. and U+3007 (〇) are dropped
    assert normalize_caption("龥\u9fa6〇") == "龥"
    assert normalize_caption("Hello, world 123") == ""


def test_ptb_tokenizer_leaves_normalised_text_unchanged():
    captions = {"a": ["我 爱 北 京 天 安 门"], "b": ["一 个 男 人 在 跑 步", "小 狗"]}
    tokenized = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    assert tokenized == captions


@pytest.mark.slow
def test_values_equal_direct_pycocoevalcap_scorer_calls(meteor, corpus):
    predictions, references = corpus
    result = caption_metrics(predictions, references, meteor=meteor)
    gts = {k: [normalize_caption(r) for r in refs] for k, refs in references.items()}
    res = {k: [normalize_caption(predictions[k])] for k in references}
    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_score, meteor_items = meteor.compute_score(gts, res)
    rouge, rouge_items = Rouge().compute_score(gts, res)
    cider, cider_items = Cider().compute_score(gts, res)
    expected = {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3], "METEOR": meteor_score,
                "ROUGE-L": rouge, "CIDEr": cider}
    for name, value in expected.items():
        assert result.summary[name] == pytest.approx(100 * value, rel=1e-12), name
    np.testing.assert_allclose(result.per_item["BLEU-4"], 100 * np.asarray(bleu_items[3]), rtol=1e-12)
    np.testing.assert_allclose(result.per_item["METEOR"], 100 * np.asarray(meteor_items), rtol=1e-12)
    np.testing.assert_allclose(result.per_item["ROUGE-L"], 100 * rouge_items, rtol=1e-12)
    np.testing.assert_allclose(result.per_item["CIDEr"], 100 * cider_items, rtol=1e-12)
    assert result.summary["n_items"] == 40 and result.summary["n_empty_predictions"] == 2


@pytest.mark.slow
def test_empty_predictions_score_zero_and_are_counted(meteor, corpus):
    predictions, references = corpus
    result = caption_metrics(predictions, references, meteor=meteor)
    empty = result.per_item.set_index("item_id").loc[["v3", "v7"]]
    assert empty["empty_prediction"].all()
    for name in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert (empty[name] == 0).all(), name


@pytest.mark.slow
def test_corpus_statistics_resample_like_the_scorers(meteor, corpus):
    """BLEU and METEOR recomputed from cached statistics equal the scorers run on the resampled corpus."""
    predictions, references = corpus
    result = caption_metrics(predictions, references, meteor=meteor)
    counts = np.bincount(np.random.default_rng(1).integers(0, 40, size=40), minlength=40)
    keys = [k for k, c in zip(references, counts) for copy in range(c)]
    gts = {f"{k}#{j}": [normalize_caption(r) for r in references[k]] for j, k in enumerate(keys)}
    res = {f"{k}#{j}": [normalize_caption(predictions[k])] for j, k in enumerate(keys)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_score, _ = meteor.compute_score(gts, res)
    weights = counts[None, :]
    assert result.statistics["BLEU-4"](weights)[0] == pytest.approx(100 * bleu[3], rel=1e-12)
    assert result.statistics["BLEU-1"](weights)[0] == pytest.approx(100 * bleu[0], rel=1e-12)
    assert result.statistics["METEOR"](weights)[0] == pytest.approx(100 * meteor_score, rel=1e-12)


@pytest.mark.slow
def test_known_values(meteor):
    references = {"a": ["一只猫在沙发上睡觉"], "b": ["小狗在草地上跑"], "c": ["老师在教室讲课"]}
    same = caption_metrics({k: v[0] for k, v in references.items()}, references, meteor=meteor)
    assert same.summary["BLEU-4"] == pytest.approx(100.0, abs=1e-6)
    assert same.summary["METEOR"] == pytest.approx(100.0)
    assert same.summary["ROUGE-L"] == pytest.approx(100.0)
    disjoint = caption_metrics({"a": "汽车开过街道", "b": "女孩唱歌跳舞", "c": "厨房做饭"}, references, meteor=meteor)
    for name in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert disjoint.summary[name] == pytest.approx(0.0, abs=1e-6), name
    # one item: 4 of 4 characters match, 4 vs 6 characters -> BLEU-1 = exp(1 - 6/4) (brevity penalty)
    short = caption_metrics({"a": "猫在睡觉"}, {"a": ["一只猫在睡觉"]}, meteor=meteor)
    assert short.summary["BLEU-1"] == pytest.approx(100 * np.exp(-0.5), rel=1e-6)
    # references as a record table's captions column gives them (a numpy array of strings)
    as_array = caption_metrics({"a": "猫在睡觉"}, {"a": np.array(["一只猫在睡觉"])}, meteor=meteor)
    assert as_array.summary == short.summary


@pytest.mark.slow
def test_bad_input_names_the_items(meteor):
    refs = {"a": ["一只猫"], "b": ["小狗"], "c": ["老师"]}
    with pytest.raises(MetricError, match=r"predictions missing for 2 of 3 items, e.g. \['b', 'c'\]"):
        caption_metrics({"a": "猫"}, refs, meteor=meteor)
    with pytest.raises(MetricError, match=r"predictions for 1 ids that have no references, e.g. \['z'\]"):
        caption_metrics({"a": "猫", "b": "狗", "c": "人", "z": "鸟"}, refs, meteor=meteor)
    with pytest.raises(MetricError, match=r"item 'b': reference 1 \('OK!'\) has no CJK character"):
        caption_metrics({"a": "猫", "b": "狗"}, {"a": ["一只猫"], "b": ["小狗", "OK!"]}, meteor=meteor)
    with pytest.raises(MetricError, match="item 'a': references must be a non-empty list of strings"):
        caption_metrics({"a": "猫"}, {"a": "一只猫"}, meteor=meteor)
    with pytest.raises(MetricError, match="item 'a': prediction must be a string, got None"):
        caption_metrics({"a": None}, {"a": ["一只猫"]}, meteor=meteor)


@pytest.mark.slow
def test_the_shared_meteor_is_reused(meteor):
    assert shared_meteor() is meteor

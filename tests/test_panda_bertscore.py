"""BERTScore F1 from a local model folder: identical texts score 100, the greedy-matching formula, the best of several
references, and no folder, no score."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from vlstudy.metrics.base import MetricError
from vlstudy.models.text_lm import train_char_tokenizer
from vlstudy.panda.bertscore import BertScorer

TEXTS = ["小猫在草地上玩球", "小狗在公园里奔跑", "厨师做饭"]


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    tok = train_char_tokenizer(TEXTS)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=32, pad_token_id=tok.pad_token_id)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return BertScorer(folder, layer=1)


def test_identical_texts_score_100_and_the_best_reference_counts(scorer):
    scores = scorer(["小猫在草地上玩球", "小狗在公园"], [["小猫在草地上玩球"], ["厨师做饭", "小狗在公园"]])
    assert scores == pytest.approx([100.0, 100.0], abs=1e-4)
    assert scorer(["小狗在公园"], [["厨师做饭"]])[0] < 100.0


def test_greedy_matching_formula(scorer):
    cand, ref = scorer._embed(["小猫玩球"])[0], scorer._embed(["小狗在草地上奔跑"])[0]
    assert cand.shape[0] == 4 and ref.shape[0] == 8  # one row per character, [CLS]/[SEP] dropped
    sim = cand @ ref.T
    precision, recall = sim.max(1).values.mean(), sim.max(0).values.mean()
    expected = 100 * 2 * precision * recall / (precision + recall)
    assert scorer(["小猫玩球"], [["小狗在草地上奔跑"]])[0] == pytest.approx(float(expected), rel=1e-5)


def test_bad_input(scorer, tmp_path):
    with pytest.raises(MetricError, match="as many non-empty reference lists"):
        scorer(["小猫"], [[]])
    with pytest.raises(FileNotFoundError, match="no such BERTScore model folder"):
        BertScorer(tmp_path / "missing")

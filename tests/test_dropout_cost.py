"""benchmarks/dropout_cost.py: its "off" arm really turns every dropout off (BERT's attention dropout included: a
training-mode forward then equals an eval-mode one), and the configured values come back (the README quotes the
script's figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "dropout_cost.py"
_spec = importlib.util.spec_from_file_location("dropout_cost", SCRIPT)
bench = sys.modules["dropout_cost"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_dropout_off_is_deterministic_and_restored():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.3)
    model = BertModel(config).train()
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        reference = model.eval()(ids).last_hidden_state
        model.train()
        assert not torch.equal(model(ids).last_hidden_state, reference)  # dropout as configured: random
        saved = {}
        bench.set_dropout(model, 0.0, saved)
        torch.testing.assert_close(model(ids).last_hidden_state, reference)  # off: the eval-mode output
        bench.set_dropout(model, None, saved)
    assert sorted({m.p for m in model.modules() if isinstance(m, nn.Dropout)}) == [0.1, 0.3]

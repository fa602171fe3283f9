"""benchmarks/likelihood_retrieval.py: each (text, video) score is the frozen LM's summed log-likelihood of the text
after the video prefix minus the same with no prefix, checked against a naive loop on a tiny model (the README quotes
the script's figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from _tiny_models import mplug_config, save_tiny_lm, tokenizer

from vlstudy.models.mplug_video import MPLUGVideoModel

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "likelihood_retrieval.py"
_spec = importlib.util.spec_from_file_location("likelihood_retrieval", SCRIPT)
bench = sys.modules["likelihood_retrieval"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _summed_logp(lm, context: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Summed log p of the tokens `ids` after the embeddings `context` (1, P, D), from one full forward per token."""
    total = torch.zeros(())
    embed = lm.get_input_embeddings()
    for i, token in enumerate(ids):
        inputs = torch.cat([context, embed(torch.tensor([ids[:i]], dtype=torch.long))], dim=1)
        total += lm(inputs_embeds=inputs).logits[0, -1].log_softmax(-1)[token]
    return total


def test_scores_are_the_log_likelihood_gain_from_the_video(tmp_path):
    tok = tokenizer()
    model = MPLUGVideoModel(mplug_config(save_tiny_lm("gpt2", tok, tmp_path))).eval()
    torch.manual_seed(3)
    dataset = [{"video": torch.randn(2, 3, 32, 32)} for _ in range(3)]  # 3 videos of 2 frames
    texts = ["小猫在草地上玩球", "篮球", "一个人在厨房里做饭"]
    scores = bench.likelihood_scores(model, dataset, texts, batch_size=2)  # batches of 2 and 1 videos
    assert scores.shape == (3, 3)  # (texts, videos)
    bos = model.lm.get_input_embeddings()(torch.tensor([[tok.bos_token_id]]))  # (1, 1, D)
    with torch.no_grad():
        for k, text in enumerate(texts):
            ids = [*tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id]  # the text and EOS
            prior = _summed_logp(model.lm, bos, ids)  # [BOS] text [EOS], no prefix
            for v, item in enumerate(dataset):
                prefix = model.visual_prefix(item["video"][None], batch_size=1)  # (1, Q, D)
                expected = _summed_logp(model.lm, torch.cat([prefix, bos], dim=1), ids) - prior
                torch.testing.assert_close(torch.tensor(scores[k, v]), expected, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(torch.tensor(scores[:, 0]), torch.tensor(scores[:, 1]))  # the video matters

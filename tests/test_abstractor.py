"""Visual abstractor: shapes, the official residual/norm placement, language-only mode, token-order invariance."""

import pytest
import torch

from vlstudy.models.abstractor import Abstractor, AbstractorConfig


@pytest.fixture(scope="module")
def abstractor():
    torch.manual_seed(0)
    return Abstractor(AbstractorConfig(num_queries=3, num_layers=2, num_heads=2), key_width=8, out_width=12).eval()


def test_queries_summarise_any_number_of_video_tokens_at_lm_width(abstractor):
    assert abstractor(torch.randn(4, 17, 8)).shape == (4, 3, 12)
    assert abstractor(torch.randn(4, 5, 8)).shape == (4, 3, 12)
    assert abstractor.queries.shape == (1, 3, 8)  # queries share the video width


def test_block_follows_the_official_attention_pool(abstractor):
    block = abstractor.blocks[0]
    queries, video = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    q = block.norm_q(queries)
    kv = block.norm_kv(video)
    x = q + block.attn(q, kv, kv)[0]  # residual on the normalised queries, as released
    expected = x + block.mlp(block.norm_mlp(x))
    torch.testing.assert_close(block(queries, video), expected)


def test_language_only_skips_cross_attention_and_keeps_a_trainable_prefix(abstractor):
    block = abstractor.blocks[0]
    queries = torch.randn(2, 3, 8)
    q = block.norm_q(queries)
    torch.testing.assert_close(block(queries, None), q + block.mlp(block.norm_mlp(q)))
    prefix = abstractor(None, batch_size=2)
    assert prefix.shape == (2, 3, 12)
    torch.testing.assert_close(prefix[0], prefix[1])  # the same soft prompt for every sample
    prefix.sum().backward()
    assert abstractor.queries.grad is not None and abstractor.queries.grad.abs().sum() > 0
    abstractor.zero_grad()


def test_language_only_needs_the_batch_size(abstractor):
    with pytest.raises(ValueError, match="batch_size is required when video_tokens is None"):
        abstractor(None)


def test_output_ignores_video_token_order_but_not_content(abstractor):
    video = torch.randn(1, 6, 8)
    shuffled = video[:, torch.randperm(6)]
    torch.testing.assert_close(abstractor(shuffled), abstractor(video))
    assert not torch.allclose(abstractor(torch.randn(1, 6, 8)), abstractor(video))


def test_heads_must_divide_the_video_width():
    with pytest.raises(ValueError, match="video width 10 is not a multiple of the abstractor's 4 heads"):
        Abstractor(AbstractorConfig(num_heads=4), key_width=10, out_width=8)

"""ALPRO's MLM: BERT masking (rates, special tokens, seeding), the loss against a naive loop, the head on the fused
text, tied decoder, loading with and without the head, and masked-token prediction that improves with training."""

import logging

import pytest
import torch

from vlstudy.models.alpro import ALPROForClassification, ALPROForPretraining
from vlstudy.models.losses import IGNORE_INDEX, mask_tokens, masked_lm_loss
from vlstudy.models.text_lm import train_char_tokenizer

from test_alpro import TEXTS, _config

CLS, SEP, PAD, MASK = 4, 5, 0, 6
VOCAB = 1000


def _ids(rows: int = 600, length: int = 64) -> torch.Tensor:
    """(rows, length) ids: [CLS] text [SEP] [PAD]..., texts of random length drawn from ids 7..VOCAB-1."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.full((rows, length), PAD)
    for i, n in enumerate(torch.randint(5, length - 1, (rows,), generator=gen).tolist()):
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = CLS, torch.randint(7, VOCAB, (n,), generator=gen), SEP
    return ids


def _mask(ids: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return mask_tokens(ids, torch.Generator().manual_seed(seed), mask_token_id=MASK, vocab_size=VOCAB,
                       special_ids=(CLS, SEP, PAD))


def _within(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    """`count` of `n` is within `sigmas` binomial standard deviations of n*p."""
    return abs(count - n * p) <= sigmas * (n * p * (1 - p)) ** 0.5


def test_masking_rates_are_bert_s_15_and_80_10_10():
    ids = _ids()
    masked, labels = _mask(ids)
    text = ~torch.isin(ids, torch.tensor([CLS, SEP, PAD]))
    selected = labels != IGNORE_INDEX
    n_text, n_sel = int(text.sum()), int(selected.sum())
    assert n_text > 15000 and _within(n_sel, n_text, 0.15)
    to_mask = int((masked[selected] == MASK).sum())
    unchanged = int((masked[selected] == ids[selected]).sum())
    randomised = n_sel - to_mask - unchanged
    # A random replacement equals the original or [MASK] with probability 1/VOCAB each: a 1e-4 shift, far inside.
    assert _within(to_mask, n_sel, 0.8) and _within(unchanged, n_sel, 0.1) and _within(randomised, n_sel, 0.1)
    assert ((masked >= 0) & (masked < VOCAB)).all()


def test_special_tokens_are_never_selected_and_only_selected_tokens_change():
    ids = _ids(200)
    masked, labels = _mask(ids, seed=3)
    special = torch.isin(ids, torch.tensor([CLS, SEP, PAD]))
    assert (labels[special] == IGNORE_INDEX).all() and torch.equal(masked[special], ids[special])
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])  # the label is the original token
    assert torch.equal(masked[~selected], ids[~selected])  # nothing else is touched


def test_masking_follows_the_generator():
    ids = _ids(50)
    assert all(torch.equal(a, b) for a, b in zip(_mask(ids, 5), _mask(ids, 5)))
    assert not torch.equal(_mask(ids, 5)[1], _mask(ids, 6)[1])
    with pytest.raises(ValueError, match=r"mlm probability must be in \(0, 1\), got 0.0"):
        mask_tokens(ids, torch.Generator(), mask_token_id=MASK, vocab_size=VOCAB, special_ids=(), probability=0.0)


def test_masked_lm_loss_equals_a_naive_loop():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=gen)
    labels = torch.full((3, 7), IGNORE_INDEX)
    labels[0, 2], labels[1, 5], labels[2, 0], labels[2, 6] = 4, 0, 10, 3
    naive = [-torch.log_softmax(logits[b, t], dim=0)[labels[b, t]] for b in range(3) for t in range(7)
             if labels[b, t] != IGNORE_INDEX]
    torch.testing.assert_close(masked_lm_loss(logits, labels), torch.stack(naive).mean())
    nothing = masked_lm_loss(logits.requires_grad_(), torch.full((3, 7), IGNORE_INDEX))
    assert nothing.item() == 0.0 and nothing.requires_grad  # a batch without a selected token: 0, not NaN


@pytest.fixture(scope="module")
def tokenizer():
    return train_char_tokenizer(TEXTS)


@pytest.fixture(scope="module")
def video():
    return torch.randn(4, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_model_mlm_reads_the_fused_text_and_matches_a_naive_computation(tokenizer, video):
    torch.manual_seed(0)
    model = ALPROForPretraining(_config(), tokenizer).eval()
    assert model.mlm_head.predictions.decoder.weight is model.text_encoder.embeddings.word_embeddings.weight  # tied
    ids, mask = model.tokenize(TEXTS)
    with torch.no_grad():
        loss = model.pretrain_losses(video, ids, mask, torch.Generator().manual_seed(0), objectives=("mlm",))
        masked, labels = mask_tokens(ids, torch.Generator().manual_seed(0), mask_token_id=tokenizer.mask_token_id,
                                     vocab_size=len(tokenizer), special_ids=(tokenizer.cls_token_id,
                                                                             tokenizer.sep_token_id,
                                                                             tokenizer.pad_token_id))
        video_embeds = model.encode_video(video)
        fused = model.fuse(model.encode_text(masked, mask), mask, video_embeds)  # (B, L, D)
        logits = model.mlm_head(fused)
        naive = torch.stack([-logits[b, t].log_softmax(0)[labels[b, t]] for b in range(4) for t in range(ids.shape[1])
                             if labels[b, t] != IGNORE_INDEX]).mean()
        other_video = model.mlm_loss(video_embeds[[1, 2, 3, 0]], ids, mask, torch.Generator().manual_seed(0))
    assert set(loss) == {"loss", "mlm"}
    torch.testing.assert_close(loss["mlm"], naive)
    assert other_video.item() != loss["mlm"].item()  # the prediction depends on the video: it reads the fused text


def test_masked_token_prediction_improves_with_training(tokenizer, video):
    torch.manual_seed(0)
    model = ALPROForPretraining(_config(), tokenizer).train()
    ids, mask = model.tokenize(TEXTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def mlm(seed: int) -> torch.Tensor:  # one fixed masking of the toy batch per seed
        return model.pretrain_losses(video, ids, mask, torch.Generator().manual_seed(seed), objectives=("mlm",))["mlm"]

    before = mlm(1).item()
    for _ in range(15):
        optimizer.zero_grad()
        mlm(1).backward()
        optimizer.step()
    assert mlm(1).item() < 0.5 * before  # the selected tokens of this batch are now predicted (3.4 → 1.2)


def test_a_checkpoint_without_the_mlm_head_loads_for_pretraining(tokenizer, tmp_path, caplog):
    torch.manual_seed(0)
    classifier = ALPROForClassification(_config(), tokenizer)
    classifier.save_pretrained(tmp_path / "cls")
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        model = ALPROForPretraining.from_pretrained(tmp_path / "cls")
    assert "mlm_head.predictions.bias" in caplog.text and "initialised" in caplog.text
    assert model.mlm_head.predictions.decoder.weight is model.text_encoder.embeddings.word_embeddings.weight
    assert torch.equal(model.text_encoder.embeddings.word_embeddings.weight,
                       classifier.text_encoder.embeddings.word_embeddings.weight)
    assert model.mlm_head.predictions.bias.abs().sum().item() == 0.0
    model.save_pretrained(tmp_path / "pre")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vlstudy.models"):
        ALPROForClassification.from_pretrained(tmp_path / "pre")  # and the pre-training head is dropped again
    assert "mlm_head.predictions.transform.dense.weight" in caplog.text or "more in" in caplog.text

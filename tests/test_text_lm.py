"""The character tokenizer, the packed LM dataset, the small causal LM and their save/load round trip."""

import pytest
import torch

from vlstudy.models.text_lm import (
    SPECIAL_TOKENS,
    PackedTextDataset,
    TextLMConfig,
    build_text_lm,
    load_text_lm,
    save_text_lm,
    train_char_tokenizer,
)

CORPUS = ["小猫在草地上玩球", "小狗在公园里奔跑", "一个人在厨房里做饭", "篮球比赛的精彩瞬间", "小猫和小狗一起玩"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_char_tokenizer(CORPUS * 3)


def test_special_tokens_come_first_in_a_fixed_order(tokenizer):
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS.values()]
    assert ids == list(range(7))
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 2, 3)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id) == (4, 5)


def test_one_token_per_character_most_frequent_first(tokenizer):
    ids = tokenizer("小猫 玩球", add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["小", "猫", "[UNK]", "玩", "球"]  # no space in the corpus
    assert tokenizer.convert_ids_to_tokens(7) == "小"  # the most frequent character: 4 times per corpus copy
    assert tokenizer("小猫", add_special_tokens=True)["input_ids"] == ids[:2]  # adds no special token itself


def test_decode_round_trips_without_spaces():
    tok = train_char_tokenizer(["视频 MV（预告/杂谈）"])
    text = "MV 视频（预告/杂谈）"
    ids = tok(text)["input_ids"]
    assert tok.decode([tok.bos_token_id, *ids, tok.eos_token_id], skip_special_tokens=True) == text


def test_vocabulary_limits_and_forced_characters():
    tok = train_char_tokenizer(["aaab", "ab", "c"], max_vocab=len(SPECIAL_TOKENS) + 1, always_include=["是否"])
    assert tok.convert_ids_to_tokens(list(range(7, len(tok)))) == ["a", "否", "是"]
    assert tok("b", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    assert train_char_tokenizer(["aaab", "ab"], min_frequency=2).convert_ids_to_tokens(7) == "a"
    assert len(train_char_tokenizer(["aaab", "ab"], min_frequency=3)) == len(SPECIAL_TOKENS) + 1


def test_packed_blocks_hold_bos_text_eos_stream(tokenizer):
    data = PackedTextDataset(["小猫", "小狗玩"], tokenizer, block_size=3)
    stream = [tokenizer.bos_token_id, *tokenizer("小猫")["input_ids"], tokenizer.eos_token_id,
              tokenizer.bos_token_id, *tokenizer("小狗玩")["input_ids"], tokenizer.eos_token_id]
    assert len(data) == len(stream) // 3 == 3
    assert torch.cat([data[i]["input_ids"] for i in range(len(data))]).tolist() == stream[:9]
    assert data[0]["labels"].tolist() == data[0]["input_ids"].tolist()
    assert data[0]["attention_mask"].tolist() == [1, 1, 1]


def test_packing_too_little_text_is_an_error(tokenizer):
    with pytest.raises(ValueError, match=r"^1 texts give 4 tokens, fewer than one block of 16$"):
        PackedTextDataset(["小猫"], tokenizer, block_size=16)


def test_lm_uses_the_tokenizer_vocabulary_and_ids(tokenizer):
    lm = build_text_lm(TextLMConfig(hidden_size=32, num_layers=1, num_heads=2, max_positions=64), tokenizer)
    assert lm.config.vocab_size == len(tokenizer)
    assert (lm.config.bos_token_id, lm.config.eos_token_id, lm.config.pad_token_id) == (2, 3, 0)
    assert lm.config.hidden_size == 32 and lm.config.max_position_embeddings == 64


def test_a_few_dozen_steps_lower_the_loss(tokenizer):
    torch.manual_seed(0)
    lm = build_text_lm(TextLMConfig(hidden_size=32, num_layers=1, num_heads=2, max_positions=16, dropout=0.0),
                       tokenizer)
    data = PackedTextDataset(CORPUS * 2, tokenizer, block_size=16)
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("input_ids", "attention_mask",
                                                                               "labels")}
    optimizer = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = lm(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 3.0  # about log(vocabulary) at the start
    assert losses[-1] < 0.5 * losses[0]


def test_save_load_round_trip(tokenizer, tmp_path):
    lm = build_text_lm(TextLMConfig(hidden_size=32, num_layers=1, num_heads=2, max_positions=64), tokenizer).eval()
    save_text_lm(lm, tokenizer, tmp_path / "lm")
    loaded, loaded_tok = load_text_lm(tmp_path / "lm")
    assert loaded_tok("小猫玩球")["input_ids"] == tokenizer("小猫玩球")["input_ids"]
    assert loaded_tok.eos_token_id == tokenizer.eos_token_id
    ids = torch.tensor([tokenizer("小猫玩球")["input_ids"]])
    torch.testing.assert_close(loaded.eval()(ids).logits, lm(ids).logits)
    assert not [p.name for p in (tmp_path).iterdir() if p.name.startswith(".staging")]


def test_loading_from_a_folder_without_config_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path}/config.json: no such file \(expected a causal LM"):
        load_text_lm(tmp_path)


def _pool(directory, titles):
    from vlstudy.data.schema import Record, records_to_frame, write_table

    write_table(records_to_frame([Record(f"v{i}", f"v{i}.mp4", title=t) for i, t in enumerate(titles)]),
                directory / "pretrain.parquet")


def test_corpus_keeps_pages_together_and_in_order(tmp_path):
    from vlstudy.tasks.text_lm import TextLMTaskConfig, corpus

    _pool(tmp_path, ["篮球集锦", ""])
    (tmp_path / "corpus.txt").write_text("第一页 甲\n第一页 乙\n\n\n第二页 甲\n  \n第三页 甲\n第三页 乙", encoding="utf-8")
    config = TextLMTaskConfig(corpus_files=[str(tmp_path / "corpus.txt")])
    assert corpus(config, tmp_path) == [["篮球集锦"], ["第一页 甲", "第一页 乙"], ["第二页 甲"], ["第三页 甲", "第三页 乙"]]

    with pytest.raises(FileNotFoundError, match=r"text-LM corpus file .*missing.txt does not exist \(params: corpus_files\)"):
        corpus(TextLMTaskConfig(corpus_files=[str(tmp_path / "missing.txt")]), tmp_path)


def test_the_task_gives_the_same_weights_whatever_ran_before(tmp_path):
    from safetensors.torch import load_file

    from vlstudy.tasks import text_lm
    from vlstudy.tasks.common import TaskPaths, launch
    from vlstudy.tasks.text_lm import TextLMTaskConfig
    from vlstudy.train.trainer import TrainConfig

    _pool(tmp_path, CORPUS * 8)
    config = TextLMTaskConfig(model=TextLMConfig(hidden_size=16, num_layers=1, num_heads=2, max_positions=32,
                                                 dropout=0.1),  # the dropout masks must be seeded too
                              train=TrainConfig(lr=1e-3, warmup_steps=1, max_steps=3, batch_size=4), corpus_files=[],
                              block_size=16, val_fraction=0.2)
    weights = []
    for run in ("a", "b"):
        if run == "b":
            torch.rand(7)  # the kernel's history differs between the two runs
        launch(text_lm.run, config, TaskPaths(data=str(tmp_path), out=str(tmp_path / run), work=str(tmp_path / f"w{run}")))
        weights.append(load_file(tmp_path / run / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0)


def test_protocol_probe_reads_answers_off_the_page(monkeypatch):
    """A stand-in LM that answers 是 exactly when the page's first line is the question's title gets every match
    right; one that always says 否 gets the pages whose answer is 否."""
    from vlstudy.data.prompts import PROTOCOL_TEXTS, match_prompt
    from vlstudy.tasks.text_lm import protocol_probe

    tok = train_char_tokenizer(["一二三四五六七八九十", match_prompt(""), "是否"], always_include=PROTOCOL_TEXTS)
    yes, no = tok.convert_tokens_to_ids(["是", "否"])

    class Echo(torch.nn.Module):
        def __init__(self, always_no: bool):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.always_no = always_no

        def forward(self, input_ids):
            ids = input_ids[0].tolist()
            first = ids[1:ids.index(tok.eos_token_id)]
            asked = ids[ids.index(tok.bos_token_id, 1) + 4:][:len(first)]  # after 标题：
            logits = torch.zeros(1, len(ids), len(tok))
            logits[0, -1, no if self.always_no or first != asked else yes] = 1.0
            return type("Out", (), {"logits": logits})

    pages = [["一二三", match_prompt("一二三") + "是"], ["四五六", match_prompt("七八九") + "否"],
             ["一二", match_prompt("一二") + "是"]]
    assert protocol_probe(Echo(False), tok, pages, 128)["match_accuracy"] == pytest.approx(100.0)
    probe = protocol_probe(Echo(True), tok, pages, 128)
    assert probe["match_accuracy"] == pytest.approx(100 / 3) and probe["probe_match_pages"] == 3

"""mini-Youku's web-like text corpus: pages about imagined videos, with lines in the protocol's prompt formats."""

import dataclasses

from vlstudy.data.classes import CLASS_NAMES
from vlstudy.data.mini_youku.generate import MiniYoukuConfig, text_corpus
from vlstudy.data.mini_youku.world import CLASSES
from vlstudy.data.prompts import MATCH_ANSWERS, classification_prompt, match_prompt

PAGES = text_corpus(dataclasses.replace(MiniYoukuConfig(), corpus_videos=200))


def _subject_of(line: str) -> set[int]:
    return {k for k, d in enumerate(CLASSES) if d.subject in line and d.activity in line}


def test_pages_are_deterministic_and_one_per_video():
    assert len(PAGES) == 200
    assert text_corpus(dataclasses.replace(MiniYoukuConfig(), corpus_videos=200)) == PAGES
    assert all(line.strip() == line and line for page in PAGES for line in page)


def test_a_caption_precedes_the_classification_line_which_names_the_pages_class():
    head = classification_prompt("")[: classification_prompt("").index("：") + 1]
    for page in PAGES:
        classes = _subject_of(page[0])
        assert len(classes) == 1, page[0]
        line = page[1]
        assert line.startswith(head)
        title, name = line[len(head):].rsplit(" 视频类目：", 1)
        assert line == classification_prompt(title) + name
        assert name == CLASS_NAMES[classes.pop()]


def test_matching_lines_answer_whether_the_asked_caption_is_this_videos():
    answers = []
    for page in PAGES:
        own = _subject_of(page[0])
        asked, answer = page[3][:-1], page[3][-1]
        assert answer in MATCH_ANSWERS
        text = asked[len("标题："):-len(" 这个视频与标题匹配吗？")]
        assert asked == match_prompt(text)
        if answer == MATCH_ANSWERS[0]:
            assert _subject_of(text) == own, page
        answers.append(answer)
    assert 0.35 < answers.count(MATCH_ANSWERS[0]) / len(answers) < 0.65

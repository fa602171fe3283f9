"""Published numbers that the report puts beside ours, each with its source.

Only numbers read in a public source are listed. The Youku-mPLUG paper's tables (Tables 3-6, Fig. 5) could not
be read from any stored copy while this kit was written (only the abstract and the official repository were); a
table row whose value is unknown is ``None`` and the report prints "n/a". To fill a value, copy it from the PDF
(arXiv 2306.04362) into this file with its table and row.

Protocol caveat (maintainers, X-PLUG/Youku-mPLUG issues #8 and #23): the paper reports the *test* split, whose
labels were never released; the kit reports on *val*. Our numbers come from a different dataset and scale in any
case (mini-Youku, tiny models): the columns sit side by side for orientation only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperNumber", "PAPER", "paper_value"]


@dataclass(frozen=True)
class PaperNumber:
    table: str
    row: str
    metric: str
    value: float | None
    source: str


PAPER: tuple[PaperNumber, ...] = (
    PaperNumber("Table 4", "mPLUG-video (2.7B)", "top1", 80.5,
                "abstract of arXiv 2306.04362: '80.5% top-1 accuracy in video category classification'"),
    PaperNumber("Table 4", "mPLUG-video (2.7B)", "top5", None, "not read"),
    PaperNumber("Table 4", "ALPRO", "top1", None, "not read"),
    PaperNumber("Table 5", "mPLUG-video (2.7B)", "CIDEr", 68.9,
                "abstract of arXiv 2306.04362: '68.9 CIDEr score in video captioning'"),
    PaperNumber("Table 5", "mPLUG-video (2.7B)", "BLEU-4", None, "not read"),
    PaperNumber("Table 5", "mPLUG-video (2.7B)", "METEOR", None, "not read"),
    PaperNumber("Table 5", "mPLUG-video (2.7B)", "ROUGE-L", None, "not read"),
    PaperNumber("Abstract", "pre-training on Youku-mPLUG", "classification gain", 23.1,
                "abstract: 'models pre-trained on Youku-mPLUG gain up to 23.1% improvement in video category "
                "classification'"),
)


def paper_value(table: str, row: str, metric: str) -> float | None:
    """The published value for (table, row, metric), or None when it is unknown here."""
    for n in PAPER:
        if (n.table, n.row, n.metric) == (table, row, metric):
            return n.value
    return None

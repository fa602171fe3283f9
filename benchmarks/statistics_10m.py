"""Statistics of a 10M-row pre-training CSV: wall time and peak memory against the targets (<= 60 s, <= 4 GB).

The real Youku-mPLUG ``pretrain.csv`` has 10,009,370 rows (``video_id:FILE,title``). This script writes a CSV of
that size with Chinese titles (5-30 words drawn from jieba's own dictionary, frequent words more often), then
runs `vlstudy.data.stats.pretrain_title_statistics` on it in a fresh process and reports that process's wall time
and peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). As a baseline measured in the same
run, a second fresh process only reads the same two columns with pyarrow: the ratio says what the checks and
statistics cost on top of reading the file.

    python benchmarks/statistics_10m.py                 # 10,009,370 rows in a temporary folder
    python benchmarks/statistics_10m.py --rows 1000000  # a quicker look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

REAL_ROWS = 10_009_370
TARGET_SECONDS = 60.0
TARGET_GB = 4.0
CHUNK = 1_000_000


def jieba_vocabulary(size: int = 20_000) -> tuple[pa.Array, np.ndarray]:
    """The `size` most frequent all-CJK words of jieba's dictionary and their sampling probabilities."""
    import jieba

    words, freqs = [], []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq, _ = line.split(" ")
            if 2 <= len(word) <= 4 and all("\u4e00" <= ch <= "\u9fff" for ch in word):
                words.append(word)
                freqs.append(int(freq))
    order = np.argsort(freqs)[::-1][:size]
    probs = np.sqrt(np.asarray(freqs, np.float64)[order])  # flatten the head a little
    return pa.array([words[i] for i in order]), probs / probs.sum()


def write_pretrain_csv(path: Path, rows: int, rng: np.random.Generator) -> None:
    """A pretrain CSV with `rows` rows, written in vectorised chunks (pyarrow list arrays and joins)."""
    vocab, probs = jieba_vocabulary()
    with pacsv.CSVWriter(path, pa.schema([("video_id:FILE", pa.string()), ("title", pa.string())])) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            lengths = rng.integers(5, 31, n)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            word_ids = rng.choice(len(vocab), offsets[-1], p=probs)
            words = pa.ListArray.from_arrays(pa.array(offsets), pc.take(vocab, pa.array(word_ids)))
            ids = pc.binary_join_element_wise("yk", pc.cast(pa.array(np.arange(start, start + n)), pa.string()),
                                              ".mp4", "")
            writer.write_table(pa.table({"video_id:FILE": ids, "title": pc.binary_join(words, "")}))


def measure(mode: str, path: str, sample_size: int) -> dict:
    """Run in a fresh process: the statistics (or the bare read); returns seconds and peak memory."""
    start = time.perf_counter()
    if mode == "stats":
        from vlstudy.data.stats import pretrain_title_statistics

        stats = pretrain_title_statistics(path, np.random.default_rng(0), sample_size=sample_size)
        detail = stats["summary"].iloc[0].to_dict()
    else:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=["video_id:FILE", "title"]))
        detail = {"rows": table.num_rows}
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return {"seconds": seconds, "peak_gb": peak_gb, **{k: int(v) for k, v in detail.items()}}


def run_child(mode: str, path: Path, sample_size: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), "--sample", str(sample_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=REAL_ROWS)
    parser.add_argument("--sample", type=int, default=100_000, help="titles segmented with jieba")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.sample)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pretrain.csv"
        start = time.perf_counter()
        write_pretrain_csv(path, args.rows, np.random.default_rng(args.seed))
        print(f"generated {args.rows:,} rows ({path.stat().st_size / 2**30:.2f} GiB) in "
              f"{time.perf_counter() - start:.1f} s")
        baseline = run_child("read", path, args.sample)
        stats = run_child("stats", path, args.sample)
    print(f"baseline (pyarrow read of the two columns): {baseline['seconds']:.1f} s, "
          f"peak {baseline['peak_gb']:.2f} GiB")
    print(f"pretrain_title_statistics (jieba on {stats['word_sample']:,} sampled titles): {stats['seconds']:.1f} s "
          f"(target <= {TARGET_SECONDS:.0f} s: {'met' if stats['seconds'] <= TARGET_SECONDS else 'MISSED'}), "
          f"peak {stats['peak_gb']:.2f} GiB (target <= {TARGET_GB:.0f} GB: "
          f"{'met' if stats['peak_gb'] <= TARGET_GB else 'MISSED'})")
    print(f"ratio to the bare read: time x{stats['seconds'] / baseline['seconds']:.1f}, "
          f"memory x{stats['peak_gb'] / baseline['peak_gb']:.1f}")


if __name__ == "__main__":
    main()

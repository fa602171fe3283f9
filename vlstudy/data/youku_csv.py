"""CSV plumbing of the Youku-mPLUG readers: streaming pyarrow reads, id checks and true file line numbers.

`vlstudy.data.youku` turns official CSV files into record tables; this module holds the format-independent
parts it shares with `vlstudy.data.stats` (which streams the 10M-row pre-training CSV):

- `iter_csv_batches` / `read_csv_columns`: pyarrow's multi-threaded C++ CSV reader (the 1.2 GB pre-training
  CSV reads in seconds); every value a string, empty cells missing.
- `check_ids`: empty and repeated ids, found with vectorised Arrow kernels.
- `LineIndex`: the line of the file on which a data row starts, for messages. A quoted field may span lines
  (a caption with a line break), so data row i is line i + 2 only when no field does; pyarrow reports no line
  numbers, so `LineIndex` counts them itself: one pass over the bytes counting line breaks decides whether
  the simple formula holds (it does when the file has exactly one line per row), else Python's ``csv`` module
  re-reads the file and records where each row starts. Blank lines, which pyarrow skips, are skipped here too.
  Only messages, warnings and the list of dropped rows ask for lines, so the common path pays nothing.

"Line" always counts the header as line 1.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["YoukuFormatError", "LineIndex", "iter_csv_batches", "check_ids", "read_csv_columns"]

_CHUNK = 16 * 2**20  # bytes read at a time when counting line breaks


class YoukuFormatError(ValueError):
    """A CSV that does not follow the official format; the message names the file, line and column."""


class LineIndex:
    """File line (1-based, header = line 1) on which each data row of a CSV starts.

    Args:
        path: the CSV file.
        num_rows: data rows pyarrow read from it (enables the fast check); None forces the exact scan.
    """

    def __init__(self, path: str | Path, num_rows: int | None = None):
        self.path = Path(path)
        self.num_rows = num_rows
        self._simple: bool | None = None

    def _one_line_per_row(self) -> bool:
        """True when the file has exactly one line per row plus the header (no multi-line field, no blank line)."""
        if self._simple is None:
            breaks, last = 0, b""
            with open(self.path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    breaks, last = breaks + chunk.count(b"\n"), chunk[-1:]
            lines = breaks + (last not in (b"\n", b""))  # a last line without a line break still counts
            self._simple = self.num_rows is not None and lines == self.num_rows + 1
        return self._simple

    def lines(self, rows: Iterable[int]) -> list[int]:
        """The start line of each data row in `rows` (0-based data row indices, any order)."""
        rows = [int(r) for r in rows]
        if not rows or self._one_line_per_row():
            return [r + 2 for r in rows]
        wanted, found, row = set(rows), {}, -2  # the first record read is the header, row -1
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as f:
            reader = csv.reader(f)
            while len(found) < len(wanted):
                start = reader.line_num + 1
                try:
                    record = next(reader)
                except StopIteration:
                    break
                if not record:  # a blank line: pyarrow skips it too
                    continue
                row += 1
                if row in wanted:
                    found[row] = start
        return [found.get(r, r + 2) for r in rows]

    def __call__(self, row: int) -> int:
        """The start line of data row `row`."""
        return self.lines([row])[0]


def _read_header(path: Path) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YoukuFormatError(f"{path}: line 1 is not valid UTF-8 ({e.reason} at byte {e.start}); "
                               "re-encode the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)") from None
    return next(csv.reader([text]), [])


def _first_non_utf8_line(path: Path) -> tuple[int, str]:
    """Line number (1-based) and decoder message of the first line that is not UTF-8."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return number, f"{e.reason} at byte {e.start} of the line"
    return 0, "no undecodable line found"


def _invalid_csv(path: Path, error: pa.ArrowInvalid) -> YoukuFormatError:
    if "UTF8" in str(error):
        line, reason = _first_non_utf8_line(path)
        return YoukuFormatError(f"{path}: line {line} is not valid UTF-8 ({reason}); re-encode the file as UTF-8 "
                                "(e.g. iconv -f GBK -t UTF-8)")
    return YoukuFormatError(f"{path}: cannot parse as CSV: {error}")


def iter_csv_batches(path: str | Path, columns: tuple[str, ...],
                     block_bytes: int = 64 * 2**20) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Stream the named columns of a CSV as Arrow record batches (strings; empty cells are null).

    Memory stays at a few blocks whatever the file size (the 10M-row pre-training CSV is 1.2 GB). Quoted
    fields may hold line breaks.

    Args:
        path: the CSV file.
        columns: required column names (exact, e.g. ``video_id:FILE``).
        block_bytes: bytes of CSV parsed per batch.

    Yields:
        (index of the batch's first data row, the batch with exactly `columns`).

    Raises:
        FileNotFoundError: the file does not exist.
        YoukuFormatError: a column is missing or the file is not UTF-8 (naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV file not found")
    header = _read_header(path)
    missing = [c for c in columns if c not in header]
    if missing:
        raise YoukuFormatError(f"{path}: missing required column(s) {missing}; found columns {header}, "
                               f"expected {list(columns)}")
    convert = pacsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.string() for c in columns},
                                   null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_bytes),
                                parse_options=parse, convert_options=convert)
        row = 0
        for batch in reader:
            yield row, batch
            row += batch.num_rows
    except pa.ArrowInvalid as e:
        raise _invalid_csv(path, e) from None


def check_ids(ids: pa.ChunkedArray | pa.Array, path: Path, column: str,
              lines: LineIndex | None = None) -> pa.ChunkedArray:
    """Strip the ids and check that none is empty and none repeats (vectorised Arrow kernels).

    Args:
        ids: the id column, in file order.
        path, column: named in errors.
        lines: line numbers of `path` (built when None).

    Returns:
        The stripped ids.

    Raises:
        YoukuFormatError: naming the line of the first empty id, or the first repeated id and its lines.
    """
    lines = lines or LineIndex(path, len(ids))
    stripped = pc.utf8_trim_whitespace(ids)
    empty = pc.fill_null(pc.equal(stripped, ""), True)
    if pc.any(empty).as_py():
        first = pc.index(empty, True).as_py()
        raise YoukuFormatError(f"{path}: line {lines(first)}, column {column!r}: empty id "
                               f"({pc.sum(empty).as_py()} row(s) without an id)")
    if pc.count_distinct(stripped).as_py() < len(stripped):
        counts = pc.value_counts(stripped)  # distinct values in order of first appearance
        repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
        first = repeated.field("values")[0].as_py()
        rows = pc.indices_nonzero(pc.equal(stripped, first)).to_pylist()
        raise YoukuFormatError(f"{path}: column {column!r}: id {first!r} appears on lines {lines.lines(rows)} "
                               f"({pc.sum(repeated.field('counts')).as_py()} rows share an id with another row)")
    return stripped if isinstance(stripped, pa.ChunkedArray) else pa.chunked_array([stripped])


def read_csv_columns(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read the named columns of a CSV as strings, with the format checks every task shares.

    Args:
        path: the CSV file.
        columns: required column names (exact, e.g. ``video_id:FILE``); the first one is the id column.

    Returns:
        A DataFrame with exactly `columns` (Arrow-backed strings; empty cells are missing; ids stripped) and a
        RangeIndex of data rows (`LineIndex` gives their file lines).

    Raises:
        FileNotFoundError: the file does not exist.
        YoukuFormatError: a column is missing, the file is not UTF-8, or an id is empty or duplicated.
    """
    path = Path(path)
    batches = [batch for _, batch in iter_csv_batches(path, columns)]
    schema = pa.schema([(c, pa.string()) for c in columns])
    table = pa.Table.from_batches(batches, schema=schema).select(list(columns))
    table = table.set_column(0, columns[0], check_ids(table.column(columns[0]), path, columns[0]))
    return table.to_pandas()

"""File imports: long CSV and XLSX, streamed in batches at constant memory.

Columns: ``station,parameter,time,value[,flag][,period]``. ``time`` is ISO 8601;
without an offset it is Beijing time; it is the START of the period (as HJ 212
labels DataTime). ``period`` is ``1min``, ``1h`` (default) or ``1d``. Bad rows
are rejected with their reason and kept; the file is processed to the end.

Text encodings: UTF-8 (with or without BOM), UTF-16 with a BOM, and GB18030 —
which includes GBK and GB2312, what Excel writes on a Chinese Windows — are
recognised; ``encoding`` names another. The whole file is checked against its
encoding before the first row is read, so a bad byte deep in a large file
stops the import before anything is stored, naming its true line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from envmon.errors import ImportFileError

REQUIRED = ("station", "parameter", "time", "value")
PROBLEM = "_problem"  # a reader's own reason to reject a row (see Validator.validate_frame)


@dataclass
class Chunk:
    frame: pd.DataFrame  # text columns; index = line number in the file
    raw: pd.Series  # each row as it stood in the file
    bytes_read: int  # position in the file after this chunk (for progress)
    encoding: str | None = None  # of a text file (None for a workbook)


def _check_header(columns: list[str], path: Path) -> list[str]:
    cols = [c.strip().lower() for c in columns]
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ImportFileError(
            f"{path}: missing column(s) {', '.join(missing)}; expected a header "
            "station,parameter,time,value[,flag][,period]"
        )
    return cols


@dataclass(frozen=True)
class _Bad:
    line: int  # 1-based line of the first byte that does not decode
    offset: int  # its byte offset in the file
    reason: str
    saw_non_ascii: bool  # valid non-ASCII text came before it


def _scan(path: Path, encoding: str, block: int = 1 << 20) -> _Bad | None:
    """Decode the whole file strictly, at constant memory; the first problem, or None."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    line, consumed, non_ascii = 1, 0, False
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            final = not data
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as err:
                pending = len(err.object) - len(data)
                good = bytes(err.object[: err.start]).decode(encoding, errors="replace")
                return _Bad(
                    line + good.count("\n"),
                    consumed - pending + err.start,
                    err.reason,
                    non_ascii or not good.isascii(),
                )
            line += text.count("\n")
            non_ascii = non_ascii or not text.isascii()
            consumed += len(data)
            if final:
                return None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def detect_encoding(path: Path, encoding: str | None = None) -> str:
    """The file's encoding, checked over the whole file; ImportFileError naming the line if not.

    A BOM decides; otherwise UTF-8, then GB18030. A file that is UTF-8 up to a
    bad byte (valid multi-byte characters before it) is damaged UTF-8, not
    GB18030: it is refused, not decoded into nonsense.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as err:
        raise ImportFileError(f"{path}: cannot open: {err.strerror}") from err
    nothing = "nothing was stored"
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError as err:
            raise ImportFileError(f"unknown encoding '{encoding}'") from err
        bad = _scan(path, name)
        if bad:
            raise ImportFileError(
                f"{path}: not {encoding} text at line {bad.line} (byte {bad.offset}: "
                f"{bad.reason}); {nothing}"
            )
        return name
    for bom, name in _BOMS:
        if head.startswith(bom):
            bad = _scan(path, name)
            if bad:
                raise ImportFileError(
                    f"{path}: starts with a {name} byte-order mark but is not {name} text at "
                    f"line {bad.line} (byte {bad.offset}: {bad.reason}); {nothing}"
                )
            return name
    if b"\x00" in head:
        # NULs in text: UTF-16/32 without a byte-order mark (it would "decode" as anything).
        raise ImportFileError(
            f"{path}: NUL bytes in the text (UTF-16 without a byte-order mark?); {nothing}."
            " Give the file's encoding with --encoding (e.g. utf-16-le)"
        )
    bad = _scan(path, "utf-8")
    if bad is None:
        return "utf-8"
    if bad.saw_non_ascii:
        raise ImportFileError(
            f"{path}: not valid UTF-8 at line {bad.line} (byte {bad.offset}: {bad.reason}); "
            f"{nothing}. Mend the line, or give --encoding if the file is not UTF-8"
        )
    gb = _scan(path, "gb18030")
    if gb is None:
        return "gb18030"
    raise ImportFileError(
        f"{path}: neither UTF-8 (line {bad.line}: {bad.reason}) nor GB18030/GBK text "
        f"(line {gb.line}: {gb.reason}); {nothing}. Give the file's encoding with --encoding"
    )


def read_csv_chunks(
    path: Path, chunk_rows: int = 50_000, *, encoding: str | None = None
) -> Iterator[Chunk]:
    enc = detect_encoding(path, encoding)
    try:
        f = open(path, encoding=enc, newline="")  # noqa: SIM115 (closed below)
    except OSError as err:
        raise ImportFileError(f"{path}: cannot open: {err.strerror}") from err
    with f:
        try:
            header_line = f.readline()
        except UnicodeDecodeError as err:  # changed since it was checked
            raise ImportFileError(f"{path}: not {enc} text ({err.reason})") from err
        if not header_line.strip():
            raise ImportFileError(f"{path}: empty file (no header)")
        header = next(csv.reader([header_line]))
        cols = _check_header(header, path)
        size = os.fstat(f.fileno()).st_size
        consumed = len(header_line)  # characters ≈ bytes: good enough for a progress bar
        line_no = 2
        while True:
            try:
                lines = f.readlines(chunk_rows * 48)
            except UnicodeDecodeError as err:
                raise ImportFileError(
                    f"{path}: not {enc} text near line {line_no} ({err.reason})"
                ) from err
            if not lines:
                break
            stripped = [ln.rstrip("\r\n") for ln in lines]
            index = pd.RangeIndex(line_no, line_no + len(lines))
            frame = _parse_lines(stripped, cols, index)
            raw = pd.Series(stripped, index=index, dtype=object)
            # Blank lines are not data: dropped, while line numbers stay true.
            blank = raw.str.strip() == ""
            if blank.any():
                frame, raw = frame[~blank.to_numpy()], raw[~blank]
            line_no += len(lines)
            consumed += sum(map(len, lines))
            yield Chunk(frame, raw, min(consumed, size), enc)


def _parse_lines(lines: list[str], cols: list[str], index: pd.Index) -> pd.DataFrame:
    """Text rows → a frame of text columns; the C parser, or csv for ragged rows."""
    try:
        frame = pd.read_csv(
            io.StringIO("\n".join(lines)),
            header=None,
            names=cols,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
        )
        if len(frame) == len(lines):
            frame.index = index
            return frame.astype(object)
    except (pd.errors.ParserError, ValueError):
        pass
    # Ragged rows (more fields than the header): parse row by row, and give a
    # too-wide row a reason of its own (its fields cannot be trusted).
    width = len(cols)
    rows = list(csv.reader(lines))
    fixed = [(r + [""] * width)[:width] for r in rows]
    frame = pd.DataFrame(fixed, columns=cols, index=index, dtype=object)
    problem = [
        f"row has {len(r)} fields, the header {width}" if len(r) > width else "" for r in rows
    ]
    if any(problem):
        frame[PROBLEM] = problem
    return frame


def read_xlsx_chunks(path: Path, chunk_rows: int = 50_000) -> Iterator[Chunk]:
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many types for a bad file
        raise ImportFileError(f"{path}: cannot read as .xlsx: {err}") from err
    try:
        ws = wb.worksheets[0]
        rows_iter = ws.iter_rows(values_only=True)
        try:
            header = next(rows_iter)
        except StopIteration as err:
            raise ImportFileError(f"{path}: empty sheet (no header)") from err
        cols = _check_header([str(h or "") for h in header], path)
        size = path.stat().st_size
        line_no = 2
        buf: list[list[object]] = []

        def flush() -> Chunk:
            nonlocal line_no, buf
            index = pd.RangeIndex(line_no, line_no + len(buf))
            frame = pd.DataFrame(
                [
                    [("" if v is None else v) for v in (list(r) + [None] * len(cols))[: len(cols)]]
                    for r in buf
                ],
                columns=cols,
                index=index,
                dtype=object,
            )
            for c in frame.columns:
                if c != "time":
                    frame[c] = frame[c].map(str)
            raw = frame.astype(str).agg(",".join, axis=1)
            line_no += len(buf)
            buf = []
            return Chunk(frame, raw, size)

        for r in rows_iter:
            # A blank row is kept (and rejected as incomplete) so line numbers stay true.
            buf.append([None] * len(cols) if r is None else list(r))
            if len(buf) >= chunk_rows:
                yield flush()
        if buf:
            yield flush()
    finally:
        wb.close()


def read_chunks(path: Path, *, encoding: str | None = None) -> Iterator[Chunk]:
    if not path.exists():
        raise ImportFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx_chunks(path)
    if suffix in (".csv", ".txt", ""):
        return read_csv_chunks(path, encoding=encoding)
    raise ImportFileError(f"{path}: unsupported file type '{suffix}' (use .csv or .xlsx)")

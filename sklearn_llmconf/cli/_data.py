"""Reading the user's tables: CSV, JSON Lines, Parquet or standard input.

Every problem is a :class:`CLIError` with a one-line message that names the
file and, where there is one, the line or row: a missing column lists the
columns found, undecodable bytes name the line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys

__all__ = ["CLIError", "Table", "data_format"]

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class CLIError(Exception):
    """A bad argument or input file: printed as one line, exit status 2."""


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs):
    record = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


def _missing(value) -> bool:
    """None or a float NaN (JSON's NaN, Parquet's null-like NaN)."""
    return value is None or isinstance(value, float) and math.isnan(value)


def data_format(path: str, given: str | None) -> str:
    """The format of ``path``: ``given``, else from the extension (stdin: csv)."""
    if given:
        return given
    if path == "-":
        return "csv"
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise CLIError(
            f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; "
            "pass --format csv, tsv, jsonl or parquet."
        )
    return _FORMATS[ext]


def _decoded_lines(raw, name, encoding):
    """Decode a binary stream line by line, naming the line that fails."""
    for number, line in enumerate(raw, start=1):
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as exc:
            raise CLIError(
                f"{name}: line {number} is not valid {encoding} (byte "
                f"{line[exc.start:exc.start + 1]!r} at column {exc.start + 1}); "
                "pass --encoding (e.g. latin-1) or re-encode the file."
            ) from None
        if number == 1:
            text = text.lstrip("\ufeff")
        yield text


class Table:
    """One input table, read in chunks of rows (dicts of column -> value).

    Parameters
    ----------
    path : str
        A file, or ``"-"`` for standard input (read once: no pre-scan).
    fmt : {"csv", "tsv", "jsonl", "parquet"}
    encoding : str, default="utf-8"
    """

    def __init__(self, path, fmt, encoding="utf-8"):
        self.path, self.fmt, self.encoding = path, fmt, encoding
        self.name = "standard input" if path == "-" else path
        if path != "-" and not os.path.isfile(path):
            raise CLIError(f"{path}: no such file.")
        if path == "-" and fmt == "parquet":
            raise CLIError("Parquet cannot be read from standard input; give a file.")

    # -- readers yield (line or row number, dict) ------------------------------
    def _open(self):
        return sys.stdin.buffer if self.path == "-" else open(self.path, "rb")

    def _csv(self, raw):
        lines = _decoded_lines(raw, self.name, self.encoding)
        reader = csv.reader(lines, delimiter="\t" if self.fmt == "tsv" else ",")
        try:
            header = next(reader)
        except StopIteration:
            raise CLIError(f"{self.name}: empty file, no header line.") from None
        except csv.Error as exc:
            raise CLIError(f"{self.name}: line 1: {exc}.") from None
        self._set_columns(header)
        try:
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise CLIError(
                        f"{self.name}: line {reader.line_num} has {len(row)} "
                        f"fields, the header {len(header)}."
                    )
                yield reader.line_num, dict(zip(header, row))
        except csv.Error as exc:
            raise CLIError(f"{self.name}: line {reader.line_num}: {exc}.") from None

    def _jsonl(self, raw):
        first = True
        for number, line in enumerate(
            _decoded_lines(raw, self.name, self.encoding), start=1
        ):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_no_duplicate_keys)
            except json.JSONDecodeError as exc:
                raise CLIError(f"{self.name}: line {number}: not JSON ({exc}).") \
                    from None
            except _DuplicateKey as exc:
                raise CLIError(f"{self.name}: line {number} has the key "
                               f"{exc.args[0]!r} twice.") from None
            except RecursionError:
                raise CLIError(f"{self.name}: line {number}: JSON nested too "
                               "deeply.") from None
            if not isinstance(record, dict):
                raise CLIError(f"{self.name}: line {number} is not a JSON object.")
            if first:
                self._set_columns(list(record))
                first = False
            yield number, record
        if first:
            raise CLIError(f"{self.name}: no JSON object in the file.")

    def _parquet(self, columns, chunk_size):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise CLIError(
                "reading Parquet needs pyarrow: pip install 'sklearn-llmconf[parquet]'."
            ) from None
        try:
            pf = pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises its own error types
            raise CLIError(f"{self.name}: not a Parquet file ({exc}).") from None
        self._set_columns(pf.schema_arrow.names)
        self.check_columns(columns)
        number = 0
        for batch in pf.iter_batches(batch_size=chunk_size, columns=list(columns)):
            for record in batch.to_pylist():
                number += 1
                yield number, record

    def _set_columns(self, names):
        self.columns = [str(n) for n in names]

    def check_columns(self, needed):
        """Refuse a missing column (naming the columns found) or one named twice."""
        missing = [c for c in needed if c not in self.columns]
        if missing:
            raise CLIError(
                f"{self.name} has no column {', '.join(map(repr, missing))}; "
                f"its columns are: {', '.join(self.columns)}."
            )
        twice = [c for c in dict.fromkeys(needed) if self.columns.count(c) > 1]
        if twice:
            raise CLIError(
                f"{self.name} has {self.columns.count(twice[0])} columns named "
                f"{twice[0]!r}; rename all but one.")

    def records(self, columns, chunk_size=1000, labels=None):
        """Yield ``(where, values)`` per row: values of ``columns`` as str.

        ``where`` is ``"line N"`` (CSV, JSON Lines) or ``"row N"`` (Parquet).
        A missing value (absent, null, NaN) is refused in every column, and
        an empty or blank one in the ``labels`` column.
        """
        if self.fmt == "parquet":
            source, unit = self._parquet(columns, chunk_size), "row"
            return self._cells(source, columns, unit, checked=True, labels=labels)
        raw = self._open()
        source = self._csv(raw) if self.fmt in ("csv", "tsv") else self._jsonl(raw)
        return self._cells(source, columns, "line", checked=False, raw=raw,
                           labels=labels)

    def _cells(self, source, columns, unit, *, checked, raw=None, labels=None):
        try:
            for number, record in source:
                if not checked:
                    self.check_columns(columns)
                    checked = True
                values = []
                for c in columns:
                    v = record.get(c)
                    if _missing(v):
                        raise CLIError(
                            f"{self.name}: {unit} {number} has no value in column "
                            f"{c!r}{' (NaN)' if v is not None else ''}."
                        )
                    v = v if isinstance(v, str) else str(v)
                    if c == labels and not v.strip():
                        raise CLIError(
                            f"{self.name}: {unit} {number} has an empty label in "
                            f"column {c!r}."
                        )
                    values.append(v)
                yield f"{unit} {number}", values
        finally:
            if raw is not None and raw is not sys.stdin.buffer:
                raw.close()

    def chunks(self, columns, chunk_size, labels=None):
        """Lists of at most ``chunk_size`` ``(where, values)`` rows."""
        chunk = []
        for item in self.records(columns, chunk_size, labels):
            chunk.append(item)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def read_all(self, columns, labels=None):
        """Every row's values, for ``fit`` (refuses an empty table)."""
        rows = [values for _, values in self.records(columns, labels=labels)]
        if not rows:
            raise CLIError(f"{self.name}: no data rows.")
        return rows

    def count(self, columns, labels=None) -> int | None:
        """Pre-scan a file: rows, with every encoding, column and cell checked.

        None for standard input (it can be read once only).
        """
        if self.path == "-":
            return None
        return sum(1 for _ in self.records(columns, labels=labels))


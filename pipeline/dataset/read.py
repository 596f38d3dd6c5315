"""Read a dataset's raw files as string-typed DataFrames in bounded chunks, failing clearly on
bad files.

Everything is read as text first so that a wrong type is reported by `typing.parse` with the
column and row, instead of pandas silently guessing a dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

import csv

from pipeline.config import DatasetSpec
from pipeline.runtime.errors import DataError

SOURCE_FILE = "__source_file"
SOURCE_ROW = "__source_row"


@dataclass(frozen=True)
class RawFile:
    path: str
    rows: int


def looks_binary(path: Path) -> bool:
    """NUL bytes or invalid UTF-8 in the first 8 KiB: not a text (CSV) file."""
    with path.open("rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a multi-byte char cut at the buffer end is fine
    return False


# Rows per chunk: pyarrow's default Parquet row group, so the file ingest writes chunk by chunk
# has the row groups (and bytes) one write of the whole frame would give, and memory stays
# bounded by one chunk of text whatever the dataset's size.
CHUNK_ROWS = 2**20


def _check_header(path: Path, got: list[str], spec: DatasetSpec) -> None:
    declared = spec.file_columns or list(spec.columns)
    extra = [c for c in got if c not in declared]
    missing = [c for c in declared if c not in got]
    if extra or missing:
        raise DataError(
            f"{path}: columns differ from the spec: "
            + "; ".join(
                p for p in (
                    f"extra column(s) {extra}" if extra else "",
                    f"missing column(s) {missing}" if missing else "",
                ) if p
            )
        )


def _header_names(path: Path, spec: DatasetSpec) -> list[str]:
    """The header row as written. pandas would rename a repeated name to `name.1` without a
    word, so a repeat is an error here unless `source.names` names the columns."""

    src = spec.source
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if src.comment and line.lstrip().startswith(src.comment) or not line.strip():
                continue
            got = next(csv.reader([line], delimiter=src.delimiter,
                                  skipinitialspace=src.skip_initial_space))
            break
        else:
            return []
    repeated = sorted({n for n in got if got.count(n) > 1})
    if repeated and src.names is None:
        where = "; ".join(f"'{n}' at positions {[i + 1 for i, g in enumerate(got) if g == n]}"
                          for n in repeated)
        raise DataError(
            f"{path}: the header repeats column name(s): {where}. Set data.source.names to "
            "the file's columns in order with a unique name each (the scaffold does this)")
    return got


def _csv_pieces(path: Path, spec: DatasetSpec, rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    src = spec.source
    names = list(spec.columns)
    layout = src.names or spec.file_columns or names  # every column of the file, in order
    if src.header and src.names is not None:
        got = _header_names(path, spec)
        if len(got) != len(src.names):
            raise DataError(f"{path}: the header has {len(got)} columns but data.source.names "
                            f"lists {len(src.names)}")
    elif src.header:
        _header_names(path, spec)
    try:
        reader = pd.read_csv(
            path,
            header=0 if src.header else None,
            names=src.names,
            sep=src.delimiter,
            skipinitialspace=src.skip_initial_space,
            comment=src.comment,
            dtype=str,
            na_values=[*src.na_values, ""],
            keep_default_na=False,
            engine="c",
            chunksize=rows,
        )
        with reader:
            for df in reader:
                if src.header:
                    _check_header(path, [str(c) for c in df.columns], spec)
                    yield df[names]
                    continue
                if df.shape[1] != len(layout):
                    raise DataError(
                        f"{path}: rows have {df.shape[1]} fields but the spec declares "
                        f"{len(layout)} columns ({', '.join(layout)}): "
                        + ("extra column(s) in the file" if df.shape[1] > len(layout)
                           else "missing column(s)")
                    )
                df.columns = layout
                yield df[names]
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: cannot parse as {src.format} ({e})".strip()) from None


def _parquet_pieces(path: Path, spec: DatasetSpec, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        got = file.schema_arrow.names
    except Exception as e:  # pyarrow raises several unrelated types
        raise DataError(f"{path}: cannot read as parquet ({e})") from None
    declared = spec.file_columns or list(spec.columns)
    extra = [c for c in got if c not in declared]
    missing = [c for c in declared if c not in got]
    if extra or missing:
        raise DataError(f"{path}: extra columns {extra}, missing columns {missing}")
    batches = file.iter_batches(batch_size=rows)
    while True:
        try:
            batch = next(batches, None)
        except Exception as e:
            raise DataError(f"{path}: cannot read as parquet ({e})") from None
        if batch is None:
            return
        df = batch.select(list(spec.columns)).to_pandas()  # ignored columns never converted
        yield df.astype("str").where(lambda d: d.notna(), None)


def _file_pieces(path: Path, spec: DatasetSpec, rows: int) -> Iterator[pd.DataFrame]:
    if not path.is_file():
        raise DataError(f"{path}: file not found (did you run `dvc pull data.dvc`?)")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    if spec.source.format == "csv":
        if looks_binary(path):
            raise DataError(f"{path}: not a text file (binary content); expected csv")
        return _csv_pieces(path, spec, rows)
    return _parquet_pieces(path, spec, rows)


def chunks(spec: DatasetSpec, root: Path, files: list[RawFile],
           rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The dataset's rows as string frames of `rows` rows each (the last one shorter), across
    file boundaries, with their origin kept for error messages and an index that runs on from
    chunk to chunk (a row's index is its position in the whole dataset). Each file's RawFile is
    appended to `files` once the file has been read."""
    import pandas as pd

    held: list[pd.DataFrame] = []
    n_held = start = 0

    def take(n: int) -> pd.DataFrame:
        nonlocal held, n_held, start
        joined = pd.concat(held, ignore_index=True) if len(held) > 1 else held[0]
        chunk, rest = joined.iloc[:n], joined.iloc[n:]
        held, n_held = ([rest] if len(rest) else []), len(rest)
        chunk.index = pd.RangeIndex(start, start + len(chunk))
        start += len(chunk)
        return chunk

    for name in spec.source.files:
        path = root / spec.source.dir / name
        n_file = 0
        for df in _file_pieces(path, spec, rows):
            df[SOURCE_FILE] = name
            df[SOURCE_ROW] = range(n_file + 1, n_file + len(df) + 1)
            n_file += len(df)
            held.append(df)
            n_held += len(df)
            while n_held >= rows:
                yield take(rows)
        if n_file == 0:
            raise DataError(f"{path}: file has no data rows")
        files.append(RawFile(path=f"{spec.source.dir}/{name}", rows=n_file))
    if n_held:
        yield take(n_held)

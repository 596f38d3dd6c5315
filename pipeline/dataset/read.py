"""Read a dataset's raw files into one string-typed DataFrame, failing clearly on bad files.

Everything is read as text first so that a wrong type is reported by `typing.parse` with the
column and row, instead of pandas silently guessing a dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import DatasetSpec
from pipeline.runtime.errors import DataError

SOURCE_FILE = "__source_file"
SOURCE_ROW = "__source_row"


@dataclass(frozen=True)
class RawFile:
    path: str
    rows: int


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a multi-byte char cut at the buffer end is fine
    return False


def _read_csv(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    src = spec.source
    names = list(spec.columns)
    try:
        df = pd.read_csv(
            path,
            header=0 if src.header else None,
            sep=src.delimiter,
            skipinitialspace=src.skip_initial_space,
            comment=src.comment,
            dtype=str,
            na_values=[*src.na_values, ""],
            keep_default_na=False,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: cannot parse as {src.format} ({e})".strip()) from None
    if src.header:
        got = [str(c) for c in df.columns]
        extra = [c for c in got if c not in spec.columns]
        missing = [c for c in names if c not in got]
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
        return df[names]
    if df.shape[1] != len(names):
        raise DataError(
            f"{path}: rows have {df.shape[1]} fields but the spec declares {len(names)} "
            f"columns ({', '.join(names)}): "
            + ("extra column(s) in the file" if df.shape[1] > len(names) else "missing column(s)")
        )
    df.columns = names
    return df


def read(spec: DatasetSpec, root: Path) -> tuple[pd.DataFrame, list[RawFile]]:
    """All files of the dataset, concatenated, with their origin kept for error messages."""
    frames, infos = [], []
    for name in spec.source.files:
        path = root / spec.source.dir / name
        if not path.is_file():
            raise DataError(f"{path}: file not found (did you run `dvc pull data.dvc`?)")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        if spec.source.format == "csv":
            if _looks_binary(path):
                raise DataError(f"{path}: not a text file (binary content); expected csv")
            df = _read_csv(path, spec)
        else:
            try:
                df = pd.read_parquet(path).astype("str").where(lambda d: d.notna(), None)
            except Exception as e:  # pyarrow raises several unrelated types
                raise DataError(f"{path}: cannot read as parquet ({e})") from None
            extra = [c for c in df.columns if c not in spec.columns]
            missing = [c for c in spec.columns if c not in df.columns]
            if extra or missing:
                raise DataError(f"{path}: extra columns {extra}, missing columns {missing}")
            df = df[list(spec.columns)]
        if df.empty:
            raise DataError(f"{path}: file has no data rows")
        df[SOURCE_FILE] = name
        df[SOURCE_ROW] = range(1, len(df) + 1)
        frames.append(df)
        infos.append(RawFile(path=f"{spec.source.dir}/{name}", rows=len(df)))
    return pd.concat(frames, ignore_index=True), infos

"""Which rows a model learned from, as hashes: so that comparing two models on one split
leaves out the rows either of them was trained on.

Why: two experiments with different seeds split the same data differently, so the champion's
training rows make up most of a candidate's test split (about two thirds on Adult). Scored
there, the champion is graded partly on its own training data: measured on Adult with the
default model, other seeds against the seed-42 champion, the champion led every candidate by
0.012–0.022 balanced accuracy on the candidates' whole test splits, but by −0.002 to +0.007 on
the rows it never saw — the bias is several times the default min_absolute_change. The
register stage stores each version's training-row hashes with it and compares on the
candidate's test rows the champion never saw.

A row's hash is pandas' `hash_pandas_object` (SipHash with a fixed key, stable across
processes and platforms) over the named columns in sorted order; identical rows share a hash,
so a duplicate of a training row counts as seen — the conservative side.
"""

from __future__ import annotations

import io

import numpy as np

ARTIFACT = "evaluation/seen_rows.npz"  # in the version's run, next to the model


def hashes(df, columns: list[str]) -> np.ndarray:
    """One uint64 per row of `df` over `columns` (sorted by name, values as stored)."""
    from pandas.util import hash_pandas_object

    cols = sorted(columns)
    return hash_pandas_object(df[cols], index=False).to_numpy(dtype=np.uint64)


def encode(df, columns: list[str]) -> bytes:
    """The artefact: the sorted unique row hashes and the columns they cover."""
    buf = io.BytesIO()
    np.savez_compressed(buf, hashes=np.unique(hashes(df, columns)),
                        columns=np.array(sorted(columns)))
    return buf.getvalue()


def unseen(df, artifact: bytes) -> tuple[np.ndarray, list[str]]:
    """(a boolean mask of the rows of `df` the artefact's model never trained on, the columns
    that were compared). KeyError names a column `df` lacks."""
    with np.load(io.BytesIO(artifact), allow_pickle=False) as z:
        seen, columns = z["hashes"], [str(c) for c in z["columns"]]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"columns {missing} of the champion's training rows are not in this split")
    return ~np.isin(hashes(df, columns), seen), columns

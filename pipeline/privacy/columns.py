"""Column policies for tabular data (applied to one pandas Series at a time).

* ``keep`` – unchanged (lets a config list every column explicitly).
* ``drop`` – the column must go; :func:`apply_column_policy` refuses it (fail closed: a
  caller that forgot to drop would otherwise keep the raw values) and
  :func:`apply_column_policies` drops it from the frame.
* ``hash`` – pseudonymise: ``sha256(salt_utf8 + str(value)_utf8).hexdigest()[:16]``. The
  salt comes from the ``GOVPIPE_PII_SALT`` environment variable and is never written
  anywhere; without it the hashes of low-entropy values (e-mails, phone numbers) could be
  reversed by brute force, so a missing or empty salt is an error, not a default.
  Missing values stay missing (NaN).
* ``year`` – generalise a date column to its year (``Int64``); unparseable → ``<NA>``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SALT_ENV_VAR",
    "require_salt",
    "ColumnPolicy",
    "PIISaltMissing",
    "apply_column_policies",
    "apply_column_policy",
    "hash_value",
]

SALT_ENV_VAR = "GOVPIPE_PII_SALT"
_HASH_HEX_CHARS = 16


class ColumnPolicy(StrEnum):
    DROP = "drop"
    HASH = "hash"
    YEAR = "year"


class PIISaltMissing(RuntimeError):
    """Raised when a column must be hashed but ``GOVPIPE_PII_SALT`` is unset or empty."""

    def __init__(self, column: str):
        self.column = column
        super().__init__(
            f"column {column!r} has PII policy 'hash' but the environment variable "
            f"{SALT_ENV_VAR} is not set (or empty); export a secret salt, e.g. "
            f"`export {SALT_ENV_VAR}=$(python -c 'import secrets; print(secrets.token_hex(32))')`"
        )


def require_salt(column: str, salt: str | None = None) -> str:
    """The salt for hashing `column` (`salt`, else the environment), or PIISaltMissing: the
    one check, which ingest also runs before any work so a missing salt costs no read."""
    value = salt if salt is not None else os.environ.get(SALT_ENV_VAR, "")
    if not value:
        raise PIISaltMissing(column)
    return value


def hash_value(value: object, salt: str) -> str:
    """Salted SHA-256 of ``str(value)``, first 16 hex characters (64 bits)."""
    digest = hashlib.sha256(salt.encode("utf-8") + str(value).encode("utf-8")).hexdigest()
    return digest[:_HASH_HEX_CHARS]


def _hash_series(series: pd.Series, salt: str) -> pd.Series:
    import pandas as pd

    missing = series.isna().to_numpy()
    values = series.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    out[:] = np.nan
    for i in np.flatnonzero(~missing):
        out[i] = hash_value(values[i], salt)
    return pd.Series(out, index=series.index, name=series.name, dtype=object)


def _year_series(series: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.year.astype("Int64")
    text = series.astype("string")
    # ISO 8601 first (fast, unambiguous), then per-value parsing for the rest.
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    years = parsed.dt.year.astype("Int64")
    todo = years.isna() & text.notna()
    if todo.any():
        rest = pd.to_datetime(text[todo], errors="coerce", format="mixed", utc=True)
        rest_years = rest.dt.year.astype("Int64")
        # dateutil fills missing parts from today ("12" -> 12th of this month): only trust
        # a year that is actually written in the value.
        for idx, y in rest_years.items():
            if pd.notna(y) and str(int(y)) in str(text[idx]):
                years[idx] = int(y)
    return years.rename(series.name)


def apply_column_policy(
    series: pd.Series, policy: str | ColumnPolicy, column_name: str, *, salt: str | None = None
) -> pd.Series:
    """Apply ``policy`` to ``series`` (the column called ``column_name``).

    ``salt`` overrides the ``GOVPIPE_PII_SALT`` environment variable (tests, tools).
    Raises ``ValueError`` for ``drop`` (the caller removes the column) and for unknown
    policies, :class:`PIISaltMissing` for ``hash`` without a salt.
    """
    try:
        pol = ColumnPolicy(policy)
    except ValueError:
        raise ValueError(
            f"column {column_name!r}: unknown PII policy {policy!r}; valid: "
            f"{[p.value for p in ColumnPolicy]}"
        ) from None
    if pol is ColumnPolicy.DROP:
        raise ValueError(
            f"column {column_name!r} has policy 'drop': remove the column instead of "
            "transforming it (apply_column_policies does this for a DataFrame)"
        )
    if pol is ColumnPolicy.HASH:
        return _hash_series(series, require_salt(column_name, salt))
    return _year_series(series)


def apply_column_policies(
    df: pd.DataFrame, policies: Mapping[str, str | ColumnPolicy], *, salt: str | None = None
) -> pd.DataFrame:
    """Copy of ``df`` with every ``{column: policy}`` applied; ``drop`` removes the column.

    A policy for a column that is not in ``df`` is an error (a typo would silently leave
    PII in place).
    """
    missing = [c for c in policies if c not in df.columns]
    if missing:
        raise KeyError(f"PII policies name columns not in the data: {missing}")
    out = df.copy()
    to_drop = []
    for col, pol in policies.items():
        if str(pol) == ColumnPolicy.DROP.value:
            to_drop.append(col)
        else:
            out[col] = apply_column_policy(out[col], pol, col, salt=salt)
    return out.drop(columns=to_drop)

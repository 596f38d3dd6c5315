"""Column policies: hash (salted), year, drop, keep."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.privacy import (
    SALT_ENV_VAR,
    PIISaltMissing,
    apply_column_policies,
    apply_column_policy,
)


def test_hash_with_salt(monkeypatch):
    monkeypatch.setenv(SALT_ENV_VAR, "pepper")
    s = pd.Series(["a@example.com", None, "b@example.com", "a@example.com"], name="email")
    out = apply_column_policy(s, "hash", "email")
    expected = hashlib.sha256(b"pepper" + b"a@example.com").hexdigest()[:16]
    assert out.iloc[0] == expected and out.iloc[3] == expected
    assert len(out.iloc[2]) == 16 and out.iloc[2] != expected
    assert pd.isna(out.iloc[1])
    assert out.name == "email" and list(out.index) == list(s.index)


def test_hash_keeps_nan_and_numbers(monkeypatch):
    monkeypatch.setenv(SALT_ENV_VAR, "s")
    out = apply_column_policy(pd.Series([1.0, np.nan, 3.0]), "hash", "id")
    assert out.isna().tolist() == [False, True, False]


def test_hash_depends_on_salt(monkeypatch):
    s = pd.Series(["x"])
    monkeypatch.setenv(SALT_ENV_VAR, "one")
    a = apply_column_policy(s, "hash", "c").iloc[0]
    monkeypatch.setenv(SALT_ENV_VAR, "two")
    b = apply_column_policy(s, "hash", "c").iloc[0]
    assert a != b


@pytest.mark.parametrize("value", [None, ""])
def test_missing_salt_is_a_clear_error(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(SALT_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(SALT_ENV_VAR, value)
    with pytest.raises(PIISaltMissing) as exc:
        apply_column_policy(pd.Series(["a"]), "hash", "customer_email")
    assert SALT_ENV_VAR in str(exc.value) and "customer_email" in str(exc.value)
    assert exc.value.column == "customer_email"


def test_year_policy():
    s = pd.Series(
        ["2024-01-15", "1999-12-31T23:59:59Z", "15 March 2001", "not a date", None, "12", "2020"],
        name="dob",
    )
    out = apply_column_policy(s, "year", "dob")
    assert str(out.dtype) == "Int64" and out.name == "dob"
    assert out.tolist()[:3] == [2024, 1999, 2001]
    assert out.isna().tolist() == [False, False, False, True, True, True, False]
    assert out.iloc[6] == 2020


def test_year_policy_on_datetime_dtype():
    s = pd.Series(pd.to_datetime(["2021-05-01", None]))
    out = apply_column_policy(s, "year", "d")
    assert out.iloc[0] == 2021 and pd.isna(out.iloc[1])


def test_drop_and_unknown_policies():
    s = pd.Series([1])
    with pytest.raises(ValueError, match="drop"):
        apply_column_policy(s, "drop", "name")
    with pytest.raises(ValueError, match="unknown PII policy"):
        apply_column_policy(s, "encrypt", "name")
    with pytest.raises(ValueError, match="unknown PII policy"):
        apply_column_policy(s, "keep", "name")  # a column without `pii` is simply kept


def test_apply_column_policies_frame(monkeypatch):
    monkeypatch.setenv(SALT_ENV_VAR, "pepper")
    df = pd.DataFrame(
        {
            "name": ["A", "B"],
            "email": ["a@x.org", "b@x.org"],
            "dob": ["1980-02-03", "bad"],
            "age": [44, 50],
        }
    )
    out = apply_column_policies(df, {"name": "drop", "email": "hash", "dob": "year"})
    assert list(out.columns) == ["email", "dob", "age"]
    assert out["dob"].tolist()[0] == 1980 and pd.isna(out["dob"].iloc[1])
    assert "name" in df.columns  # input untouched
    with pytest.raises(KeyError, match="emial"):
        apply_column_policies(df, {"emial": "hash"})

"""The resume stamp's rules (pipeline/runtime/sweeps.py), without running a stage."""

from __future__ import annotations

import pytest

from pipeline.runtime import sweeps
from pipeline.runtime.errors import ConfigError

OUTS = ("artifacts/model.pkl", "reports/train.json")


def _job(tmp_path, digest: str):
    for rel in OUTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    sweeps.mark_finished(tmp_path, "train", digest)


def test_a_job_is_finished_only_with_its_stamp_its_config_and_all_its_outputs(tmp_path):
    raw = {"seed": 1, "model": {"name": "logreg"}}
    digest = sweeps.job_digest(raw, None)
    assert not sweeps.finished(tmp_path, "train", OUTS, digest)  # never ran
    _job(tmp_path, digest)
    assert sweeps.finished(tmp_path, "train", OUTS, digest)
    assert not sweeps.finished(tmp_path, "train", OUTS, sweeps.job_digest({**raw, "seed": 2}, None))
    assert not sweeps.finished(tmp_path, "train", OUTS, sweeps.job_digest(raw, tmp_path))
    (tmp_path / OUTS[0]).unlink()
    assert not sweeps.finished(tmp_path, "train", OUTS, digest)


def test_a_damaged_stamp_means_not_finished(tmp_path):
    digest = sweeps.job_digest({"seed": 1}, None)
    _job(tmp_path, digest)
    sweeps.stamp_path(tmp_path, "train").write_text("{not json")
    assert not sweeps.finished(tmp_path, "train", OUTS, digest)


def test_the_digest_ignores_key_order():
    assert sweeps.job_digest({"a": 1, "b": {"c": 2, "d": 3}}, None) == sweeps.job_digest(
        {"b": {"d": 3, "c": 2}, "a": 1}, None)


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_resume_must_be_a_boolean(value):
    with pytest.raises(ConfigError, match="resume: expected true or false"):
        sweeps.resume_flag(value)
    assert sweeps.resume_flag(None) is False and sweeps.resume_flag(True) is True

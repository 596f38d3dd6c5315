"""split: deterministic, stratified, every group in every split; standalone runs stay apart."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from tests.conftest import ROOT, stage


def _digest(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((d / "artifacts" / "split").glob("*.parquet"))}


def test_split_is_deterministic_stratified_and_complete(built, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b):
        proc = stage(ROOT, "split", f"+inputs={built}", f"hydra.run.dir={d}")
        assert proc.returncode == 0, proc.stderr
    assert _digest(a) == _digest(b), "same inputs and seed must give byte-identical splits"
    assert _digest(a) == _digest(built), "standalone and `dvc repro` must agree byte for byte"
    proc = stage(ROOT, "split", f"+inputs={built}", "split.seed=7", f"hydra.run.dir={c}")
    assert proc.returncode == 0
    assert _digest(a) != _digest(c), "another seed must give another split"

    parts = {s: pd.read_parquet(a / "artifacts" / "split" / f"{s}.parquet")
             for s in ("train", "val", "test")}
    total = sum(len(p) for p in parts.values())
    assert total == 45222
    for name, ratio in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        assert abs(len(parts[name]) / total - ratio) < 0.001
    # stratified: the share of >50K among women is the same in every split (±0.5 pt)
    shares = [((p["sex"] == "Female") & (p["income"] == ">50K")).mean() for p in parts.values()]
    assert max(shares) - min(shares) < 0.005
    for p in parts.values():  # every group of every sensitive attribute appears
        assert set(p["race"].unique()) == set(parts["train"]["race"].unique())
    report = json.loads((a / "reports" / "split.json").read_text())
    assert report["splits"]["test"]["by_group"]["sex"]["Female"][">50K"] == (
        (parts["test"]["sex"] == "Female") & (parts["test"]["income"] == ">50K")).sum()


def test_too_small_stratum_is_a_clear_error(built, tmp_path):
    run = tmp_path / "run"
    proc = stage(ROOT, "split", f"+inputs={built}", "split.train=0.98",
                 "split.val=0.01", "split.test=0.01", "split.stratify_by=[sex,race]",
                 f"hydra.run.dir={run}")
    assert proc.returncode == 2
    assert "too small" in proc.stderr and "Other" in proc.stderr
    assert not (run / "artifacts").exists()


def test_multirun_writes_each_job_to_its_own_folder(built, tmp_path):
    before = _digest(built)
    assert before, "the built repo has tracked split outputs to compare against"
    sweep = tmp_path / "sweep"
    # Run from inside the repo, as a user would: the sweep must still land in its own folders.
    proc = stage(built, "split", "-m", "split.seed=1,2", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    assert _digest(sweep / "0") != _digest(sweep / "1")
    assert (sweep / "0" / ".hydra" / "overrides.yaml").exists()
    assert before == _digest(built), "a standalone sweep must not touch DVC-tracked outputs"

"""train and metrics entry points: bad input refused before fitting, sweeps kept apart."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from pipeline.evaluation.performance import calibration_points, performance
from tests.conftest import ROOT, composed, stage


def _params_run(tmp_path, name, mutate):
    raw = composed()
    mutate(raw)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return stage(tmp_path, name, "--dvc")


@pytest.mark.parametrize(
    ("stage_name", "mutate", "needles"),
    [
        pytest.param("train", lambda r: r["model"].update(name="xgb"),
                     ["model", "'xgb'", "'logreg', 'hgb', 'rf'"], id="unknown-model"),
        pytest.param("train", lambda r: r.update(model={**composed("model=logreg")["model"],
                                                          "C": -1.0}),
                     ["model.logreg.C: got -1.0", "greater than 0"], id="negative-C"),
        pytest.param("train", lambda r: r["model"].update(max_iter="many"),
                     ["model.hgb.max_iter: got 'many'", "integer"], id="wrong-type"),
        pytest.param("train", lambda r: r["mitigation"].update(constraint="equal_vibes"),
                     ["mitigation.threshold_optimizer.constraint: got 'equal_vibes'"],
                     id="unknown-constraint"),
        pytest.param("train", lambda r: r["mitigation"].update(attribute="religion"),
                     ["mitigation.attribute: 'religion' is not a sensitive attribute"],
                     id="mitigation-attribute"),
        pytest.param("metrics", lambda r: r["metrics"].update(threshold=1.5),
                     ["metrics.threshold: got 1.5", "less than or equal to 1"],
                     id="threshold-out-of-range"),
        pytest.param("metrics", lambda r: r["metrics"].update(intersections=[["sex", "age"]]),
                     ["metrics.intersections.0", "['sex', 'age']"], id="bad-intersection"),
    ],
)
def test_bad_config_is_refused_before_any_work(tmp_path, stage_name, mutate, needles):
    proc = _params_run(tmp_path, stage_name, mutate)
    assert proc.returncode == 2, proc.stderr
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in {proc.stderr}"
    assert "fitted" not in proc.stderr and not (tmp_path / "artifacts").exists()


def test_unknown_model_group_option_is_a_hydra_error(tmp_path):
    proc = stage(ROOT, "train", "model=xgb", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "model/xgb" in proc.stderr and "logreg" in proc.stderr  # Hydra lists the options


def test_sensitive_attribute_missing_from_split_files(tmp_path, built):
    import pandas as pd

    out = tmp_path / "in" / "artifacts" / "split"
    out.mkdir(parents=True)
    df = pd.read_parquet(built / "artifacts" / "split" / "train.parquet").head(500)
    df.drop(columns=["sex"]).to_parquet(out / "train.parquet")
    proc = stage(ROOT, "train", f"+inputs={tmp_path / 'in'}", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    assert "['sex'] missing" in proc.stderr and "fitted" not in proc.stderr


def test_performance_matches_hand_computed_values():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.1, 0.3, 0.4])
    p = performance(y, s, threshold=0.5)
    # predictions: 1 1 0 1 0 0 0 0 → tp 2, fn 1, fp 1, tn 4
    assert p["confusion"] == {"tn": 4, "fp": 1, "fn": 1, "tp": 2}
    assert p["acc"] == 0.75
    assert p["prec"] == pytest.approx(2 / 3, abs=1e-6)
    assert p["rec"] == pytest.approx(2 / 3, abs=1e-6)
    assert p["bal_acc"] == pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-6)
    # AUC: of 15 positive/negative pairs, positives outrank negatives in 12.5 (0.2 vs 0.1 ×2 → 2,
    # 0.9 → 5, 0.6 → 4 and 0.7 > 0.6 …) computed: pairs won / 15
    wins = sum((a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0])
    assert p["roc_auc"] == pytest.approx(wins / 15, abs=1e-6)
    assert p["brier"] == pytest.approx(np.mean((s - y) ** 2), abs=1e-6)
    one_class = performance(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.9]), 0.5)
    assert one_class["roc_auc"] is None and one_class["rec"] is None


def test_calibration_bins():
    y = np.array([0, 1, 1, 1])
    s = np.array([0.05, 0.15, 0.95, 1.0])
    pts = calibration_points(y, s, bins=10)
    assert [p["bin"] for p in pts] == [0, 1, 9]
    assert pts[-1] == {"bin": 9, "mean_predicted": 0.975, "fraction_positive": 1.0, "count": 2}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_multirun_with_joblib_launcher_keeps_runs_apart(tmp_path, built):
    tracked = built / "artifacts" / "model.pkl"
    before = _sha(tracked)
    sweep = tmp_path / "sweep"
    proc = stage(built, "train", "-m", "model=logreg", "mitigation=none", "seed=1,2",
                 "hydra/launcher=parallel", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    reports = [json.loads((sweep / str(i) / "reports" / "train.json").read_text()) for i in (0, 1)]
    assert {r["seed"] for r in reports} == {1, 2}
    assert (sweep / "0" / "artifacts" / "model.pkl").exists()
    assert (sweep / "1" / "artifacts" / "model.pkl").exists()
    assert before == _sha(tracked), "a sweep must not touch DVC-tracked outputs"


def test_threshold_optimizer_model_needs_the_sensitive_input(tmp_path, built):
    from pipeline.model import load

    proc = stage(ROOT, "train", "model=logreg", f"+inputs={built}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    model = load(tmp_path / "artifacts" / "model.pkl")
    assert model.sensitive_inputs == ["sex"] and model.input_columns[-1] == "sex"
    import pandas as pd

    df = pd.read_parquet(built / "artifacts" / "split" / "test.parquet").head(50)
    a = model.score(df)
    assert a.shape == (50,) and ((a >= 0) & (a <= 1)).all()
    np.testing.assert_array_equal(a, model.score(df.copy()))  # deterministic, not randomised
    with pytest.raises(ValueError, match="sex"):
        model.score(df.drop(columns=["sex"]))


def test_a_declared_training_sample_is_stratified_seeded_and_reported(tmp_path, built):
    """model.max_train_rows: a seeded sample stratified by the target and the first sensitive
    attribute, the same on every run; the train report says how many rows there were."""
    import pandas as pd

    runs = []
    for i in (1, 2):
        out = tmp_path / f"run{i}"
        proc = stage(ROOT, "train", "model=logreg", "mitigation=none",
                     "model.max_train_rows=5000", f"+inputs={built}", f"hydra.run.dir={out}")
        assert proc.returncode == 0, proc.stderr
        runs.append(out)
    report = json.loads((runs[0] / "reports" / "train.json").read_text())
    full = pd.read_parquet(built / "artifacts" / "split" / "train.parquet")
    assert report["rows"] == 5000 and report["rows_available"] == len(full)
    share = (full["income"] == ">50K").mean()
    assert abs(report["positives"] / 5000 - share) < 0.002  # stratified by the target
    same = [hashlib.sha256((r / "artifacts" / "model.pkl").read_bytes()).hexdigest()
            for r in runs]
    assert same[0] == same[1]


def test_a_design_matrix_larger_than_memory_is_refused_with_the_setting_to_change(monkeypatch):
    from pipeline import train
    from pipeline.runtime.errors import ConfigError

    monkeypatch.setattr(train, "_available_bytes", lambda: 20 * 2**30)
    with pytest.raises(ConfigError) as e:
        train._check_memory(29_000_000, 99)
    msg = str(e.value)
    assert "about 42.8 GiB (29,000,000 rows x 99 columns" in msg and "20.0 GiB" in msg
    assert "set model.max_train_rows (e.g. 10,845,877)" in msg
    train._check_memory(10_845_877, 99)  # the suggested size fits


def test_scoring_in_batches_gives_the_same_scores_to_the_bit(monkeypatch):
    """GovernedModel.score works SCORE_ROWS rows at a time (the size is a speed choice,
    pipeline/model.py): batches, including a short last one, change no score."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import pipeline.model as model_mod

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.normal(size=1000)})
    y = (X["a"] + rng.normal(size=1000) > 0).astype(int)
    fitted = LogisticRegression().fit(X, y)
    m = model_mod.GovernedModel(
        fitted=fitted, kind="plain", features=["a", "b"], sensitive_inputs=[],
        positive_label="1", negative_label="0", model_name="logreg", mitigation="none",
        dataset="synthetic", categories={})
    whole = fitted.predict_proba(X)[:, 1]
    for rows in (1000, 333, 64):
        monkeypatch.setattr(model_mod, "SCORE_ROWS", rows)
        np.testing.assert_array_equal(m.score(X), whole)

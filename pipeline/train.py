"""train: fit the configured model (and mitigator) on the train split; save one artefact.

    dvc repro train
    python -m pipeline.train model=logreg mitigation=none
    python -m pipeline.train -m model=logreg,hgb
"""

from __future__ import annotations

import logging
import time

import numpy as np

from pipeline.model import GovernedModel, save
from pipeline.modelling import estimators
from pipeline.runtime.errors import ConfigError, DataError
from pipeline.runtime.paths import MODEL, SPLIT, TRAIN_REPORT
from pipeline.runtime.runner import Context, main

log = logging.getLogger("pipeline.train")

OUTS = (MODEL, TRAIN_REPORT)
PARAMS = ("data.name", "data.target", "data.features", "data.sensitive",
          "data.sensitive_as_features", "data.columns", "model", "mitigation", "seed")


def _fit(spec, model_cfg, mitigation, seed, X, y, sensitive):
    features = list(X.columns)
    base = estimators.pipeline(spec, features, model_cfg, seed)
    if mitigation.name == "none":
        return base.fit(X, y), "plain", []
    if mitigation.name == "exponentiated_gradient":
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

        constraint = {"demographic_parity": DemographicParity,
                      "equalized_odds": EqualizedOdds}[mitigation.constraint]
        eg = ExponentiatedGradient(base, constraint(difference_bound=mitigation.eps),
                                   max_iter=mitigation.max_iter,
                                   sample_weight_name="est__sample_weight")
        return eg.fit(X, y, sensitive_features=sensitive), "reduction", []
    from fairlearn.postprocessing import ThresholdOptimizer

    to = ThresholdOptimizer(estimator=base, constraints=mitigation.constraint,
                            objective=mitigation.objective, grid_size=mitigation.grid_size,
                            predict_method="predict_proba")
    return to.fit(X, y, sensitive_features=sensitive), "postprocessing", [mitigation.attribute]


# The encoded (dense float64) training matrix, and the estimator's own float64 copy of it.
MATRIX_COPIES = 2


def _available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where there is no such file."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _check_memory(rows: int, width: int) -> None:
    """Refuse, before any work, a fit whose design matrix cannot fit: the kernel's OOM killer
    would otherwise end the stage with no message (or take the machine with it)."""
    need = rows * width * 8 * MATRIX_COPIES
    have = _available_bytes()
    if have is not None and need > have:
        gib = 2**30
        fits = max(1000, int(have / (width * 8 * MATRIX_COPIES) * 0.8))
        raise ConfigError(
            f"train: the encoded training matrix needs about {need / gib:.1f} GiB ({rows:,} rows "
            f"x {width} columns x 8 bytes, {MATRIX_COPIES} copies) but {have / gib:.1f} GiB is "
            f"available; set model.max_train_rows (e.g. {fits:,}) to train on a stratified "
            "sample, or use a machine with more memory")


def _sample(df, y, sensitive, limit: int | None, seed: int):
    """(rows to train on, y): all of them, or a seeded sample of `limit` rows stratified by the
    target and the first sensitive attribute (by the target alone where a stratum is too small),
    in the split's row order."""
    from sklearn.model_selection import train_test_split

    if limit is None or len(df) <= limit:
        return df, y
    idx = np.arange(len(df))
    strata = [y * 1_000_003 + sensitive.cat.codes.to_numpy(), y]
    for s in strata:
        try:
            keep, _ = train_test_split(idx, train_size=limit, random_state=seed, stratify=s)
            break
        except ValueError:
            continue
    else:
        keep, _ = train_test_split(idx, train_size=limit, random_state=seed)
    keep = np.sort(keep)
    log.info("training on a stratified sample of %d of %d rows (model.max_train_rows)",
             len(keep), len(df))
    return df.iloc[keep].reset_index(drop=True), y[keep]


def run(ctx: Context) -> None:
    import pandas as pd

    spec, model_cfg, mitigation = ctx.params.data, ctx.params.model, ctx.params.mitigation
    src = ctx.require(SPLIT["train"], "split")
    df = pd.read_parquet(src)
    features = spec.model_features
    attr = getattr(mitigation, "attribute", None)
    needed = [*features, spec.target.column, *([attr] if attr else [])]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise DataError(f"{src}: column(s) {absent} missing; the split is stale or from "
                        "another dataset (rerun ingest and split)")
    y = (df[spec.target.column] == spec.target.positive).to_numpy(dtype=np.int64)
    if y.min() == y.max():
        raise DataError(f"{src}: the train split has only one class of '{spec.target.column}'")
    available = len(df)
    df, y = _sample(df, y, df[next(iter(spec.sensitive))].astype("category"),
                    model_cfg.max_train_rows, ctx.params.seed)
    _check_memory(len(df), estimators.encoded_width(spec, features))

    started = time.perf_counter()
    fitted, kind, sensitive_inputs = _fit(
        spec, model_cfg, mitigation, ctx.params.seed, df[features], y,
        df[attr].astype(str) if attr else None,
    )
    log.info("fitted %s (mitigation %s) on %d rows in %.1f s", model_cfg.name, mitigation.name,
             len(df), time.perf_counter() - started)
    negative = [c for c in spec.columns[spec.target.column].categories
                if c != spec.target.positive]
    model = GovernedModel(
        fitted=fitted, kind=kind, features=features, sensitive_inputs=sensitive_inputs,
        positive_label=spec.target.positive, negative_label=" / ".join(negative),
        model_name=model_cfg.name, mitigation=mitigation.name, dataset=spec.name,
        categories={c: list(spec.columns[c].categories or []) for c in features
                    if spec.columns[c].type == "category"},
    )
    save(model, ctx.outputs.path(MODEL))
    ctx.outputs.write_json(TRAIN_REPORT, {
        "dataset": spec.name,
        "model": model_cfg.model_dump(),
        "mitigation": mitigation.model_dump(),
        "seed": ctx.params.seed,
        "rows": len(df),
        "rows_available": available,
        "positives": int(y.sum()),
        "features": features,
        "sensitive_inputs": sensitive_inputs,
    })


if __name__ == "__main__":
    main("train", PARAMS, OUTS, run)

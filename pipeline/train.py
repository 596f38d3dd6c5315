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
from pipeline.runtime.errors import DataError
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
        "positives": int(y.sum()),
        "features": features,
        "sensitive_inputs": sensitive_inputs,
    })


if __name__ == "__main__":
    main("train", PARAMS, OUTS, run)

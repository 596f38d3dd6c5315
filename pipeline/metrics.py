"""metrics: performance and fairness of the trained model on the validation and test splits.

    dvc repro metrics
    python -m pipeline.metrics metrics.threshold=0.4

Writes DVC metrics with short keys (`metrics/performance.json`, `metrics/fairness.json`) for
`dvc exp show` / `dvc metrics diff`, the full fairness report with per-group tables and
bootstrap intervals (`reports/fairness.json`), each evaluation row's score with its sensitive
attributes (`reports/scores.parquet`, for the model card's LL 144 scoring rates) and DVC plot
data (`plots/`).

Fairness sign convention: differences are max − min over eligible groups (≥ 0, 0 = parity);
`dir` (disparate impact ratio) is min ÷ max selection rate (1 = parity). Groups below
`metrics.min_count` rows or `metrics.min_share` of the split are reported but excluded.
"""

from __future__ import annotations

import logging

from pipeline.evaluation import performance as evaluation
from pipeline.evaluation.split_scores import score_split
from pipeline.fairness.report import summary
from pipeline.model import load
from pipeline.runtime.errors import DataError
from pipeline.runtime.paths import (
    EVAL_SPLITS,
    FAIRNESS,
    FAIRNESS_REPORT,
    MODEL,
    PERFORMANCE,
    PLOTS,
    SCORES,
    SPLIT,
)
from pipeline.runtime.runner import Context, main

log = logging.getLogger("pipeline.metrics")

OUTS = (PERFORMANCE, FAIRNESS, FAIRNESS_REPORT, SCORES, *PLOTS.values())
PARAMS = ("data.name", "data.target", "data.sensitive", "metrics", "seed")


def _load_split(ctx: Context, name: str, needed: list[str]):
    import pandas as pd

    path = ctx.require(SPLIT[name], "split")
    df = pd.read_parquet(path)
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise DataError(f"{path}: column(s) {absent} missing (sensitive attribute or model "
                        "input); rerun ingest and split for this dataset")
    return df


def run(ctx: Context) -> None:
    spec, cfg = ctx.params.data, ctx.params.metrics
    model_path = ctx.require(MODEL, "train")
    model = load(model_path)
    needed = [*model.input_columns, spec.target.column, *spec.sensitive]

    perf, fair, full, scores = {}, {}, {}, []
    for split in EVAL_SPLITS:
        df = _load_split(ctx, split, needed)
        s = score_split(model, df, spec, cfg, threshold=cfg.threshold, seed=ctx.params.seed,
                        n_boot=cfg.n_boot)
        y, score, pred, report = s.y, s.score, s.pred, s.fairness
        perf[split] = s.performance
        perf[split]["ci"] = evaluation.bootstrap_performance(
            y, score, cfg.threshold, n_boot=cfg.n_boot, seed=ctx.params.seed, alpha=cfg.alpha)
        full[split] = report
        fair[split] = summary(report)
        scores.append(_scores(split, s.score, df, spec))
        ctx.outputs.write_json(PLOTS[f"roc_{split}"], evaluation.roc_points(y, score))
        ctx.outputs.write_json(PLOTS[f"pr_{split}"], evaluation.pr_points(y, score))
        ctx.outputs.write_json(PLOTS[f"calibration_{split}"],
                               evaluation.calibration_points(y, score, cfg.calibration_bins))
        if split == "test":
            labels = {1: spec.target.positive, 0: model.negative_label}
            ctx.outputs.write_json(PLOTS["confusion"], [
                {"actual": labels[int(a)], "predicted": labels[int(p)]}
                for a, p in zip(y, pred, strict=True)
            ])
            ctx.outputs.write_json(PLOTS["selection_rate"], [
                {"group": f"{key}={g['group']}", "selection_rate": g["selection_rate"]}
                for key, b in report["breakdowns"].items() for g in b["groups"]
                if g["selection_rate"] is not None
            ])
    _write_scores(ctx, scores)
    ctx.outputs.write_json(PERFORMANCE, {s: {k: v for k, v in p.items() if k != "ci"}
                                         for s, p in perf.items()})
    ctx.outputs.write_json(FAIRNESS, fair)
    ctx.outputs.write_json(FAIRNESS_REPORT, {
        "dataset": spec.name, "model": model.model_name, "mitigation": model.mitigation,
        "threshold": cfg.threshold, "positive_label": spec.target.positive,
        "performance_ci": {s: p["ci"] for s, p in perf.items()}, "splits": full,
    })
    t = perf["test"]
    log.info("test: acc %.4f, roc_auc %s; %s", t["acc"], t["roc_auc"], ", ".join(
        f"{k} dir {v.get('dir')}" for k, v in fair["test"].items()))


def _scores(split: str, score, df, spec):
    """One split's rows as the card's scoring rates need them: the score (unrounded: a rate
    above the median must not depend on rounding) and each sensitive attribute, in the split's
    row order. No feature, target or identifier: what is not needed is not copied."""
    import pandas as pd

    frame = pd.DataFrame({"split": split, "score": score})
    for attr in spec.sensitive:
        frame[attr] = df[attr].to_numpy()
        if isinstance(df[attr].dtype, pd.CategoricalDtype):  # keep the declared order
            frame[attr] = pd.Categorical(frame[attr], categories=df[attr].cat.categories)
    return frame


def _write_scores(ctx: Context, frames: list) -> None:
    import pandas as pd

    out = pd.concat(frames, ignore_index=True)
    out["split"] = pd.Categorical(out["split"], categories=list(EVAL_SPLITS))
    out.to_parquet(ctx.outputs.path(SCORES), index=False)


if __name__ == "__main__":
    main("metrics", PARAMS, OUTS, run)

"""One window of live records judged like the test split: the metrics stage's fairness report
and performance metrics, governance's gates, drift limits, and a verdict.

The same functions as the metrics stage (pipeline.fairness.report.fairness_report,
pipeline.evaluation.performance) with the same settings (metrics.min_count, min_share,
intersections, n_boot, alpha, seed) and the same gates (pipeline.audit.gates.evaluate), so
the test split sent through the server with its outcomes gives the metrics stage's figures.

Selection-rate metrics (disparate impact ratio, statistical parity difference) need no
outcome: they are computed on every prediction of the window. Error-rate metrics (TPR/FPR
gaps, plug-ins) and performance need outcomes: they are computed on the predictions that
have one. A figure that cannot be computed - too few records or outcomes, fewer than two
eligible groups, an attribute the requests did not carry - is insufficient evidence: never a
pass (verdict INSUFFICIENT_EVIDENCE unless something failed outright, then ALERT).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.audit import gates
from pipeline.dataset.sensitive import derive_one
from pipeline.evaluation import performance as evaluation
from pipeline.fairness.report import fairness_report

SELECTION_METRICS = frozenset({"disparate_impact_ratio", "statistical_parity_difference"})
OK, ALERT, INSUFFICIENT = "OK", "ALERT", "INSUFFICIENT_EVIDENCE"
SEVERITY = {OK: 0, INSUFFICIENT: 1, ALERT: 2}


def _attributes(df: Any, spec: Any) -> tuple[Any, list[str], list[str]]:
    """Derived sensitive attributes of the rows that carry all the logged ones."""
    import pandas as pd

    present = [a for a, s in spec.sensitive.items()
               if s.column in df.columns and df[s.column].notna().any()]
    missing = [a for a in spec.sensitive if a not in present]
    out = pd.DataFrame({a: derive_one(df, spec.sensitive[a], spec) for a in present})
    return out, present, missing


def _report(y, pred, sens, attrs, crossings, mc, seed) -> dict:
    return fairness_report(
        y, pred, sens, attrs, intersections=crossings, n_boot=mc.n_boot, seed=seed,
        alpha=mc.alpha, min_count=mc.min_count, min_share=mc.min_share,
        extra_metrics=mc.extra_fairness_metrics)


def _merged(selection: dict | None, outcome: dict | None) -> dict:
    """Breakdowns for the gates: selection metrics from every prediction, the rest from the
    predictions with outcomes."""
    keys = set((selection or {}).get("breakdowns", {})) | set(
        (outcome or {}).get("breakdowns", {}))
    out = {}
    for key in sorted(keys):
        s = (selection or {}).get("breakdowns", {}).get(key)
        o = (outcome or {}).get("breakdowns", {}).get(key)
        metrics = {}
        for src, pick in ((s, True), (o, False)):
            if src is None:
                continue
            for name, m in src["metrics"].items():
                if (name in SELECTION_METRICS) == pick:
                    metrics[name] = m
        base = s or o
        out[key] = {"metrics": metrics, "excluded_groups": base.get("excluded_groups", [])}
    return {"breakdowns": out}


def evaluate(df: Any, cfg: Any, baseline: Any, window: dict) -> dict:
    """The window's figures, gate results, drift and verdict (JSON-ready)."""

    spec, mc, gov, mon = cfg.data, cfg.metrics, cfg.governance, cfg.monitor
    n = len(df)
    labelled = df["_y"].notna().to_numpy()
    entry: dict[str, Any] = {**window, "records": n, "outcomes": int(labelled.sum())}
    sens, attrs, missing = _attributes(df, spec)
    entry["attributes"] = attrs
    entry["attributes_not_logged"] = missing
    complete = sens.notna().all(axis=1).to_numpy() if attrs else np.zeros(n, bool)
    entry["records_without_attributes"] = int(n - complete.sum())
    crossings = [c for c in mc.crossings(list(spec.sensitive)) if all(a in attrs for a in c)]
    pred = df["_label_id"].to_numpy(dtype=np.int64)
    score = df["_probability"].to_numpy(dtype=np.float64)
    y = np.where(labelled, df["_y"].fillna(0).to_numpy(), 0).astype(np.int64)
    seed = cfg.seed

    selection = outcome = None
    use = complete
    if attrs and use.sum() >= mon.min_records:
        both = labelled[use]
        if both.all() and both.sum() >= mon.min_outcomes:  # one report serves both
            outcome = selection = _report(y[use], pred[use], sens[use], attrs, crossings,
                                          mc, seed)
        else:
            # y is a placeholder here: only the selection metrics of this report are used.
            selection = _report(np.zeros(int(use.sum()), np.int64), pred[use], sens[use],
                                attrs, crossings, mc, seed)
            lab = use & labelled
            if lab.sum() >= mon.min_outcomes:
                outcome = _report(y[lab], pred[lab], sens[lab], attrs, crossings, mc, seed)
    entry["fairness"] = {"selection": selection, "outcomes": outcome}

    perf, perf_ci = {}, {}
    if labelled.sum() >= mon.min_outcomes:
        perf = evaluation.performance(y[labelled], score[labelled], mc.threshold)
        perf_ci = evaluation.bootstrap_performance(
            y[labelled], score[labelled], mc.threshold, n_boot=mc.n_boot, seed=seed,
            alpha=mc.alpha)
        perf["calibration"] = evaluation.calibration_points(y[labelled], score[labelled],
                                                            mc.calibration_bins)
    entry["performance"] = {**perf, "ci": perf_ci} if perf else None

    results = gates.evaluate(gov, _merged(selection, outcome), perf, perf_ci)
    entry["gates"] = [_gate(r) for r in results]
    entry["drift"] = {"features": baseline.features(df), "prediction":
                      baseline.prediction(score)}
    entry["verdict"], entry["reasons"], entry["insufficient"] = _verdict(
        results, entry["drift"], mon.drift, n, mon, missing, int(labelled.sum()))
    return entry


def _gate(r: gates.GateResult) -> dict:
    d = r.as_dict()
    d["outcome"] = ("INSUFFICIENT" if r.compared is None else
                    gates.outcome(r.passed, r.advisory))
    return d


def _verdict(results, drift, limits, n, mon, missing, outcomes) -> tuple[str, list, list]:
    reasons, insufficient = [], []
    if n < mon.min_records:
        insufficient.append(f"{n} prediction(s) in the window, fewer than "
                            f"monitor.min_records={mon.min_records}")
    if outcomes < mon.min_outcomes:
        insufficient.append(f"{outcomes} outcome(s), fewer than monitor.min_outcomes="
                            f"{mon.min_outcomes}: outcome-based gates not judged")
    for a in missing:
        insufficient.append(f"sensitive attribute {a} was not in the requests (not logged)")
    for r in results:
        if r.passed or r.advisory:
            continue
        where = f"{r.attribute}: " if r.attribute and r.attribute not in r.reason else ""
        (insufficient if r.compared is None else reasons).append(f"{where}{r.reason}")
    for f in drift["features"]:
        if limits.psi_max is not None and f["psi"] is not None and f["psi"] > limits.psi_max:
            reasons.append(f"drift: PSI of {f['feature']} = {f['psi']:.4g} > {limits.psi_max:g}")
        if limits.ks_max is not None and f["ks"] is not None and f["ks"] > limits.ks_max:
            reasons.append(f"drift: KS of {f['feature']} = {f['ks']:.4g} > {limits.ks_max:g}")
    p = drift["prediction"]
    if p is not None and limits.prediction_psi_max is not None and p["psi"] is not None \
            and p["psi"] > limits.prediction_psi_max:
        reasons.append(f"prediction drift: PSI of the probability = {p['psi']:.4g} > "
                       f"{limits.prediction_psi_max:g}")
    verdict = ALERT if reasons else (INSUFFICIENT if insufficient else OK)
    return verdict, reasons, insufficient


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=SEVERITY.__getitem__) if verdicts else INSUFFICIENT

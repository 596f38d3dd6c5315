"""The monitoring report as self-contained HTML: the model card's document model and charts
(pipeline.audit.document, pipeline.audit.charts), so it renders offline like the card."""

from __future__ import annotations

from pipeline.audit.charts import selection_rate_svg
from pipeline.audit.document import Figure, Section, Table, to_html

TITLE = "Monitoring report"


def _ci(ci: dict | None) -> str:
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return "—"
    return f"{ci['low']:.3f}–{ci['high']:.3f}"


def _summary(report: dict) -> Section:
    s = Section("Verdict").add(
        f"{report['verdict']} for model {report['model']['sha256'][:12]} over "
        f"{report['range']['since']} .. {report['range']['until']}: "
        f"{report['log']['predictions']} prediction(s), {report['log']['outcomes']} outcome(s) "
        f"in {len(report['windows'])} window(s).")
    if report["reasons"]:
        s.add("Reasons:", report["reasons"])
    if report["insufficient"]:
        s.add("Insufficient evidence (not a pass):", report["insufficient"])
    log = report["log"]
    s.add(Table(["log", "value"], [
        ["directory", log["dir"]], ["records verified", log["records"]],
        ["first record", log["first"]], ["last record", log["last"]],
        ["duplicate outcomes ignored", log["duplicate_outcomes"]],
        ["outcomes without a prediction of this model", log["orphan_outcomes"]],
        ["records of other models (not judged)", sum(log["other_models"].values())],
    ]))
    return s


def _window(w: dict, ratio_min: float | None) -> list[Section]:
    head = Section(f"Window {w['since']} .. {w['until']}").add(
        f"{w['verdict']}: {w['records']} prediction(s), {w['outcomes']} outcome(s); "
        f"attributes logged: {', '.join(w['attributes']) or 'none'}"
        + (f"; not logged: {', '.join(w['attributes_not_logged'])}"
           if w["attributes_not_logged"] else "") + ".")
    if w["reasons"]:
        head.add(w["reasons"])
    if w["insufficient"]:
        head.add("Insufficient evidence:", w["insufficient"])
    out = [head]
    fair = Section("Fairness (selection on every prediction; error rates where outcomes "
                   "arrived)")
    sel, outc = w["fairness"]["selection"], w["fairness"]["outcomes"]
    for key, b in (sel or {}).get("breakdowns", {}).items():
        ob = (outc or {}).get("breakdowns", {}).get(key)
        tpr = {g["group"]: g for g in ob["groups"]} if ob else {}
        fair.add(Table(
            ["group", "count", "selection rate", "95% CI", "impact ratio", "TPR", "FPR",
             "excluded"],
            [[g["group"], g["count"], g["selection_rate"], _ci(g["ci"]["selection_rate"]),
              g["impact_ratio"], tpr.get(g["group"], {}).get("tpr"),
              tpr.get(g["group"], {}).get("fpr"), g["exclusion_reason"] or ""]
             for g in b["groups"]], caption=key))
        rows = [(str(g["group"]), g["selection_rate"], g["excluded"]) for g in b["groups"]
                if g["selection_rate"] is not None]
        if rows:
            fair.add(Figure(selection_rate_svg(rows, f"Selection rate by {key}", ratio_min),
                            f"Selection rate by {key} (dashed: the disparate impact gate)."))
    out.append(fair)
    out.append(Section("Gates").add(Table(
        ["gate", "value", "95% CI", "rule", "outcome", "enforcement"],
        [[g["id"], g["value"], _ci(g["ci"]), f"{g['direction']} {g['threshold']:g}",
          g["outcome"], g["enforcement"]] for g in w["gates"]])))
    perf = w["performance"]
    if perf:
        out.append(Section("Performance (predictions with outcomes)").add(Table(
            ["metric", "value", "95% CI"],
            [[k, perf.get(k), _ci(perf["ci"].get(k))]
             for k in ("acc", "bal_acc", "prec", "rec", "f1", "roc_auc", "brier")])))
    drift = Section("Drift against the training data")
    feats = w["drift"]["features"]
    drift.add(Table(["feature", "type", "PSI", "KS", "n"],
                    [[f["feature"], f["type"], f["psi"], f["ks"], f["n"]] for f in feats]))
    rows = [(f["feature"], f["psi"], False) for f in feats if f["psi"] is not None]
    if rows:
        drift.add(Figure(selection_rate_svg(rows, "PSI per feature", None,
                                            xlabel="population stability index"),
                         "PSI per feature against the training split's bins."))
    p = w["drift"]["prediction"]
    if p:
        drift.add(f"Prediction drift: PSI of the probability {p['psi']}, live mean "
                  f"{p['live_mean']}, training mean {p['reference_mean']}.")
    out.append(drift)
    return out


def html(report: dict, ratio_min: float | None) -> str:
    sections = [_summary(report)]
    for w in report["windows"]:
        sections += _window(w, ratio_min)
    return to_html(TITLE, sections)

"""The model card and bias audit: who the model is, what it is for, how it does, per group.

Built from the pipeline's own reports only. The bias-audit tables follow the shape of a
NYC Local Law 144 audit: per category the count, selection rate and impact ratio (selection rate
÷ the highest selection rate); categories under `governance.model_card.audit_min_share` of the
split (2% by default) are reported but excluded from the impact ratios, with the reason.
"""

from __future__ import annotations

from typing import Any

from pipeline.audit.charts import selection_rate_svg
from pipeline.audit.document import Figure, Section, Table, to_html, to_markdown
from pipeline.audit.gates import outcome
from pipeline.fairness.impact import impact_ratios


def _fmt_ci(ci: dict | None) -> str:
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return "—"
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def audit_rows(groups: list[dict], min_share: float) -> list[dict]:
    """The bias audit's rows: LL 144 impact ratios over the categories with at least
    `min_share` of the split (`governance.model_card.audit_min_share`, not the metrics' own
    exclusion rule); the formula is `fairness.impact.impact_ratios`."""
    counted = {g["group"] for g in groups if g["share"] >= min_share}
    ratios = impact_ratios({g["group"]: g["selection_rate"] for g in groups}, counted)
    rows = []
    for g in groups:
        keep = g["group"] in counted and g["selection_rate"] is not None
        reason = "" if keep else (
            "no rows" if g["count"] == 0 else f"share {g['share']:.2%} < {min_share:.0%}")
        rows.append({"group": g["group"], "count": g["count"], "share": g["share"],
                     "selection_rate": g["selection_rate"], "impact_ratio": ratios[g["group"]],
                     "status": "included" if keep else "EXCLUDED", "reason": reason})
    return rows


def build(ctx: dict[str, Any]) -> tuple[str, str]:
    """Markdown and HTML of the card. `ctx` holds the stage's inputs (see governance.py)."""
    gov, ident = ctx["governance"], ctx["governance"]["identity"]
    sections = [_identity(ctx), _intended_use(ctx["card"]), _data(ctx), _performance(ctx),
                _bias_audit(ctx), _gates(gov), _privacy(gov)]
    title = f"Model card: {ident['model']} on {ident['dataset']} — {gov['verdict']}"
    return to_markdown(title, sections), to_html(title, sections)


def _identity(ctx: dict[str, Any]) -> Section:
    gov = ctx["governance"]
    ident = gov["identity"]
    section = Section("Identity").add(Table(["field", "value"], [
        ["verdict", gov["verdict"]],
        ["model", f"{ident['model']} (mitigation: {ident['mitigation']})"],
        ["dataset", ident["dataset"]],
        ["git commit", "recorded on the registry version (tag git_commit)"],
        ["data hash (sha256 of the raw files)", ident["data_hash"]],
        ["params hash (sha256)", ident["params_hash"]],
        ["model sha256", ident["model_sha256"]],
        ["decision threshold", ctx["threshold"]],
    ]))
    if gov["reasons"]:
        section.add("Rejected because:", list(gov["reasons"]))
    return section


def _intended_use(card) -> Section:
    return Section("Intended use and limitations").add(
        card.intended_use, "Out of scope:", list(card.out_of_scope) or ["—"],
        "Limitations:", list(card.limitations) or ["—"], f"Owners: {card.owners or '—'}")


def _data(ctx: dict[str, Any]) -> Section:
    spec, ingest, split = ctx["spec"], ctx["ingest"], ctx["split"]
    dropped = ingest["rows_dropped"]
    data = Section("Data").add(
        f"Source: {spec.source.provenance or spec.source.dir} (licence: "
        f"{spec.source.licence or 'unknown'}). Files: "
        + ", ".join(f"{f['path']} ({f['rows']} rows)" for f in ingest["files"]) + ".",
        f"Rows in: {ingest['rows_in']}; rows used: {ingest['rows_out']}; rows excluded: "
        f"{dropped['total']}.",
    )
    if dropped["by_reason"]:
        data.add(Table(["excluded because", "rows"], sorted(dropped["by_reason"].items())))
    data.add(Table(["split", "rows"], [[k, v["rows"]] for k, v in split["splits"].items()],
                   caption=f"Split (seed {split['seed']}, stratified by "
                           f"{', '.join(split['stratified_by'])})"))
    data.add("Sensitive attributes: " + ", ".join(
        f"{n} (from column '{s.column}'{', derived' if s.map or s.bins else ''})"
        for n, s in spec.sensitive.items()) + ".")
    return data


def _performance(ctx: dict[str, Any]) -> Section:
    perf_rows = []
    for split_name, p in ctx["performance"].items():
        ci = ctx["performance_ci"].get(split_name, {})
        perf_rows.append([split_name, p["n"], p["acc"], _fmt_ci(ci.get("acc")), p["bal_acc"],
                          _fmt_ci(ci.get("bal_acc")), p["f1"], p["roc_auc"],
                          _fmt_ci(ci.get("roc_auc")), p["brier"]])
    perf = Section("Performance").add(Table(
        ["split", "n", "accuracy", "95% CI", "balanced acc.", "95% CI", "F1", "ROC AUC",
         "95% CI", "Brier"], perf_rows))
    for key, b in ctx["fairness"]["breakdowns"].items():
        if b["kind"] != "attribute":
            continue
        perf.add(Table(
            ["group", "count", "selection rate", "95% CI", "TPR", "95% CI", "FPR", "95% CI"],
            [[g["group"], g["count"], g["selection_rate"], _fmt_ci(g["ci"]["selection_rate"]),
              g["tpr"], _fmt_ci(g["ci"]["tpr"]), g["fpr"], _fmt_ci(g["ci"]["fpr"])]
             for g in b["groups"]],
            caption=f"Per-group performance on the {ctx['split_name']} split: {key}"))
    return perf


def _bias_audit(ctx: dict[str, Any]) -> Section:
    card, gov = ctx["card"], ctx["governance"]
    audit = Section("Bias audit (NYC Local Law 144 style)").add(
        f"Impact ratio = category selection rate ÷ highest selection rate. Categories under "
        f"{card.audit_min_share:.0%} of the {ctx['split_name']} split are reported but excluded "
        "from the impact ratios. Convention for the metrics below: "
        + ctx["fairness"]["convention"] + ".")
    chart_rows = []
    for key, b in ctx["fairness"]["breakdowns"].items():
        rows = audit_rows(b["groups"], card.audit_min_share)
        audit.add(Table(["category", "count", "share", "selection rate", "impact ratio",
                         "status", "reason"],
                        [[r["group"], r["count"], r["share"], r["selection_rate"],
                          r["impact_ratio"], r["status"], r["reason"]] for r in rows],
                        caption=f"{key} ({b['kind']})"))
        audit.add(Table(["metric", "value", "95% CI"],
                        [[name, m["value"], _fmt_ci(m["ci"])] for name, m in b["metrics"].items()]))
        chart_rows += [(f"{key}={r['group']}", r["selection_rate"] or 0.0,
                        r["status"] != "included") for r in rows if r["count"]]
    # The line the gate applies, not a hard-coded four fifths: the configured minimum.
    ratio_min = next((g["threshold"] for g in gov["gates"]
                      if g["metric"] == "disparate_impact_ratio"), None)
    rule = "no disparate impact gate" if ratio_min is None else \
        f"the disparate impact gate's minimum, {ratio_min:g} × the highest rate in the chart"
    audit.add(Figure(selection_rate_svg(chart_rows, "Selection rate by group", ratio_min),
                     f"Selection rate by group (hatched: excluded from impact ratios; dashed: "
                     f"{rule})."))
    return audit


def _gates(gov: dict) -> Section:
    return Section("Governance gates").add(Table(
        ["gate", "value", "95% CI", "compared", "rule", "outcome", "enforcement"],
        [[g["id"], g["value"], _fmt_ci(g["ci"]), f"{g['basis']}",
          f"{g['direction']} {g['threshold']:g}",
          outcome(g["passed"], g["advisory"]), g["enforcement"]]
         for g in gov["gates"]]))


def _privacy(gov: dict) -> Section:
    scan = gov["privacy_scan"]
    priv = Section("Privacy scan").add(
        f"Scanned {scan['files_scanned']} file(s) the registry will receive for "
        f"{', '.join(scan['entities'])}: {scan['findings']} finding(s).")
    if scan["findings"]:
        priv.add(Table(["file", "entity", "line", "column"],
                       [[f["path"], f["entity"], f["line"], f["column"]]
                        for f in scan["details"]]))
    return priv

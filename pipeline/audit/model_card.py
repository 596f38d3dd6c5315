"""The model card and bias audit, in the sections of Mitchell et al., "Model Cards for Model
Reporting" (FAT* 2019): model details, intended use, factors, metrics, evaluation data,
training data, quantitative analyses, ethical considerations, caveats and recommendations;
then the NYC Local Law 144 bias audit (`ll144`), the privacy scan and a map to the EU AI
Act's Annex IV (`annex_iv`).

The verdict and every warning come first, before any table. Built from the pipeline's own
reports and config only (no clock, no git), so the same inputs give the same bytes. Every rate
is worded relative to the favourable label (`card_words`).
"""

from __future__ import annotations

from typing import Any

from pipeline.audit import annex_iv, card_words, ll144
from pipeline.audit.charts import selection_rate_svg
from pipeline.audit.document import Figure, Section, Table, to_html, to_markdown
from pipeline.audit.gates import outcome


def _fmt_ci(ci: dict | None) -> str:
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return "—"
    return f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def build(ctx: dict[str, Any]) -> tuple[str, str]:
    """Markdown and HTML of the card. `ctx` holds the stage's inputs (see governance.py)."""
    gov, ident = ctx["governance"], ctx["governance"]["identity"]
    lab = card_words.labels(ctx["spec"])
    split = ctx["scores"]
    audit = ll144.audit(split, ctx["spec"], threshold=ctx["threshold"],
                        min_share=ctx["card"].audit_min_share)
    sections = [
        _verdict(ctx, audit), _details(ctx, lab), _intended_use(ctx, lab), _factors(ctx),
        _metrics(ctx, lab), _evaluation_data(ctx, lab), _training_data(ctx, lab),
        _analyses(ctx, lab),
        ll144.section(audit, card=ctx["card"], spec=ctx["spec"], split_name=ctx["split_name"],
                      split_report=ctx["split"], files=ctx["ingest"]["files"], fav=lab.fav,
                      threshold=ctx["threshold"]),
        _ethics(ctx, lab), _caveats(ctx, audit), _privacy(gov),
    ]
    sections.append(annex_iv.section([s.title for s in sections]))
    title = f"Model card: {ident['model']} on {ident['dataset']} — {gov['verdict']}"
    return to_markdown(title, sections), to_html(title, sections)


# -- what the model needs at predict time (the server's request schema is these columns) -------
def sensitive_inputs(ctx: dict[str, Any]) -> list[str]:
    """Sensitive attributes the served model requires in every request: a mitigator's
    attribute (train's `sensitive_inputs`, which `GovernedModel.input_columns` appends), and
    sensitive source columns that are features (`data.sensitive_as_features`)."""
    spec, train = ctx["spec"], ctx["train"]
    sources = {s.column: a for a, s in spec.sensitive.items()}
    as_features = [sources[f] for f in spec.model_features if f in sources]
    return list(dict.fromkeys([*as_features, *train.get("sensitive_inputs", [])]))


def _input_sentence(ctx: dict[str, Any]) -> str | None:
    need = sensitive_inputs(ctx)
    if not need:
        return None
    why = []
    if ctx["train"].get("sensitive_inputs"):
        why.append(f"mitigation {ctx['governance']['identity']['mitigation']} applies "
                   "group-specific decision thresholds, so a person's "
                   + " and ".join(ctx["train"]["sensitive_inputs"]) + " changes their decision")
    if ctx["spec"].sensitive_as_features:
        why.append("data.sensitive_as_features is true: sensitive columns are model features")
    return (f"The served model requires the sensitive attribute(s) {', '.join(need)} in every "
            f"request ({'; '.join(why)}).")


# -- sections --------------------------------------------------------------------------------
def _verdict(ctx: dict[str, Any], audit: dict) -> Section:
    gov = ctx["governance"]
    failed = [g for g in gov["gates"] if not g["passed"]]
    section = Section("Verdict and warnings").add(Table(["item", "value"], [
        ["verdict", gov["verdict"]],
        ["blocking gates failed", sum(not g["advisory"] for g in failed)],
        ["advisory gates failed (warnings)", sum(g["advisory"] for g in failed)],
        ["personal data found in the evidence", gov["privacy_scan"]["findings"]],
        ["governance.enforcement", gov["enforcement"]],
    ]))
    warnings = [f"advisory gate failed: {w}" for w in gov["warnings"]]
    if (need := _input_sentence(ctx)) is not None:
        warnings.append(need)
    card = ctx["card"]
    unset = [f"{what} (governance.model_card.{key})" for what, key in (
        ("audit date", "audit_date"), ("distribution date", "distribution_date"))
        if not getattr(card, key)]
    if unset:
        warnings.append("NYC LL 144: not set: " + ", ".join(unset) + (
            "; without an audit date the card cannot say when the next audit is due."
            if not card.audit_date else "."))
    for name, attr in audit["categories"].items():
        if attr is None:
            warnings.append(f"NYC LL 144: the dataset declares no {name} attribute; the bias "
                            f"audit cannot report {name} or its intersection.")
    # One table, so that each reason and warning sits right under the verdict, marked.
    rows = [["FAIL", r] for r in gov["reasons"]] + [["WARN", w] for w in warnings]
    return section.add(Table(["status", "reasons for rejection and warnings"],
                             rows or [["PASS", "no gate failed and nothing to warn about"]]))


def _details(ctx: dict[str, Any], lab) -> Section:
    gov, ident, spec = ctx["governance"], ctx["governance"]["identity"], ctx["spec"]
    need = sensitive_inputs(ctx)
    return Section("Model details").add(Table(["field", "value"], [
        ["model", f"{ident['model']} (scikit-learn pipeline; mitigation: "
                  f"{ident['mitigation']})"],
        ["dataset", f"{ident['dataset']}: {spec.description}" if spec.description
         else ident["dataset"]],
        ["output", f"a score (probability of the favourable label {lab.fav}) and a decision "
                   f"(that label when the score ≥ {ctx['threshold']:g})"],
        ["inputs at predict time", ", ".join(spec.model_features)
         + (f"; sensitive: {', '.join(need)}" if need else "")],
        ["owners", ctx["card"].owners or "—"],
        ["verdict", gov["verdict"]],
        ["model sha256 (the version)", ident["model_sha256"]],
        ["data hash (sha256 of the raw files)", ident["data_hash"]],
        ["params hash (sha256)", ident["params_hash"]],
        ["git commit", "recorded on the registry version (tag git_commit)"],
        ["decision threshold", ctx["threshold"]],
        ["data licence", spec.source.licence or "unknown"],
    ]))


def _intended_use(ctx: dict[str, Any], lab) -> Section:
    card = ctx["card"]
    return Section("Intended use").add(
        card.intended_use, card_words.target_sentence(lab), "Out of scope:",
        list(card.out_of_scope) or ["—"])


def _factors(ctx: dict[str, Any]) -> Section:
    spec, fair = ctx["spec"], ctx["fairness"]
    settings = fair["settings"]
    rows = [[name, s.column, "derived (map)" if s.map else "derived (bins)" if s.bins
             else "as recorded", ", ".join(s.groups(spec.columns)) or "—"]
            for name, s in spec.sensitive.items()]
    crossed = [k for k, b in fair["breakdowns"].items() if b["kind"] == "intersection"]
    return Section("Factors").add(
        Table(["attribute", "column", "how", "groups"], rows,
              caption="Sensitive attributes: the factors every metric is broken down by"),
        "Intersections evaluated: " + (", ".join(crossed) or "none") + " (metrics.intersections).",
        f"Groups with fewer than {settings['min_count']} rows or under "
        f"{settings['min_share']:.0%} of the split are reported but left out of the fairness "
        "metrics and gates. Characteristics not declared as sensitive attributes (for example "
        "age or disability, unless listed above) are not evaluated.")


def _metrics(ctx: dict[str, Any], lab) -> Section:
    gov, settings = ctx["governance"], ctx["fairness"]["settings"]
    return Section("Metrics").add(
        Table(["term", "meaning"], card_words.glossary(lab, ctx["threshold"]),
              caption=f"What each figure means, relative to the favourable label {lab.fav}"),
        f"Confidence intervals: percentile bootstrap, {settings['n_boot']} replicates of the "
        f"{ctx['split_name']} split's rows (seed {settings['seed']}), "
        f"{1 - settings['alpha']:.0%} intervals; the performance and fairness intervals use the "
        f"same resampled rows. Sign convention: {ctx['fairness']['convention']}.",
        Table(["gate", "value", "95% CI", "compared", "rule", "outcome", "enforcement"],
              [[g["id"], g["value"], _fmt_ci(g["ci"]), f"{g['basis']}",
                f"{g['direction']} {g['threshold']:g}", outcome(g["passed"], g["advisory"]),
                g["enforcement"]] for g in gov["gates"]],
              caption=f"Governance gates: the thresholds the verdict applies on the "
                      f"{ctx['split_name']} split"))


def _composition(split_report: dict, name: str, lab) -> list[Table]:
    out = []
    for attr, groups in split_report["splits"][name].get("by_group", {}).items():
        rows = []
        for g, counts in groups.items():
            n = sum(counts.values())
            fav = counts.get(lab.favourable, 0)
            rows.append([g, n, fav, fav / n if n else None])
        out.append(Table([attr, "rows", f'true label "{lab.favourable}"', "share"], rows,
                         caption=f"{name} split by {attr}"))
    return out


def _evaluation_data(ctx: dict[str, Any], lab) -> Section:
    split, name, spec = ctx["split"], ctx["split_name"], ctx["spec"]
    strat = ", ".join(split["stratified_by"])
    section = Section("Evaluation data").add(
        f"The {name} split: {split['splits'][name]['rows']} rows of "
        f"{spec.source.provenance or spec.source.dir}, held out by the split stage (seed "
        f"{split['seed']}, stratified by {strat}) and never used to train the model. Every "
        "figure in the gates, the quantitative analyses and the bias audit is on these rows.",
        Table(["split", "rows"], [[k, v["rows"]] for k, v in split["splits"].items()]))
    return section.add(*_composition(split, name, lab))


def _training_data(ctx: dict[str, Any], lab) -> Section:
    spec, ingest, train, privacy = ctx["spec"], ctx["ingest"], ctx["train"], ctx["privacy"]
    dropped = ingest["rows_dropped"]
    section = Section("Training data").add(
        f"Source: {spec.source.provenance or spec.source.dir} (licence: "
        f"{spec.source.licence or 'unknown'}). Files: "
        + ", ".join(f"{f['path']} ({f['rows']} rows)" for f in ingest["files"]) + ".",
        f"Rows in: {ingest['rows_in']}; rows kept: {ingest['rows_out']}; rows excluded at "
        f"ingest: {dropped['total']}. The model trained on the train split: {train['rows']} "
        f"rows, {train['positives']} with the favourable label {lab.fav}"
        + (f" (a stratified sample of the split's {train['rows_available']} rows: "
           "model.max_train_rows)." if train.get("rows_available", train["rows"]) > train["rows"]
           else "."))
    if dropped["by_reason"]:
        section.add(Table(["excluded because", "rows"], sorted(dropped["by_reason"].items())))
    section.add(*_composition(ctx["split"], "train", lab))
    used = set(spec.model_features)
    section.add(Table(["feature", "type", "description"],
                      [[f, getattr(spec.columns.get(f), "type", None),
                        getattr(spec.columns.get(f), "description", None) or ""]
                       for f in spec.model_features],
                      caption="Features the model uses (data.features, without sensitive "
                              "source columns unless data.sensitive_as_features)"))
    unused = [c for c in spec.columns if c not in used and c != spec.target.column]
    section.add("Declared columns the model does not use: " + (", ".join(unused) or "none")
                + ".")
    pii = ingest.get("pii_columns") or {}
    what = {"drop": "removed at ingest", "hash": "replaced by a salted SHA-256 (salt from "
            "GOVPIPE_PII_SALT, never stored)", "year": "generalised to the year"}
    section.add(Table(["PII column", "policy", "effect"],
                      [[c, p, what.get(p, p)] for c, p in sorted(pii.items())],
                      caption="PII policies applied at ingest (data.columns.*.pii)")
                if pii else "PII policies applied: no column is declared PII "
                            "(data.columns.*.pii).")
    free = [c for c, col in spec.columns.items()
            if getattr(col, "type", None) == "string" and col.pii is None]
    detectors = [*privacy.builtin, *(c.name for c in privacy.custom),
                 *(str(p.get("_target_")) for p in privacy.plugins)]
    section.add(("Free-text columns scrubbed at ingest: " + ", ".join(free) if free
                 else "No free-text column is kept, so none is scrubbed")
                + f". PII detectors (privacy): {', '.join(detectors)}; they also scrub every "
                "log record and scan everything the registry receives (Privacy scan below).")
    return section


def _analyses(ctx: dict[str, Any], lab) -> Section:
    perf_rows = []
    for split_name, p in ctx["performance"].items():
        ci = ctx["performance_ci"].get(split_name, {})
        perf_rows.append([split_name, p["n"], p["acc"], _fmt_ci(ci.get("acc")), p["bal_acc"],
                          _fmt_ci(ci.get("bal_acc")), p["f1"], p["roc_auc"],
                          _fmt_ci(ci.get("roc_auc")), p["brier"]])
    section = Section("Quantitative analyses").add(Table(
        ["split", "n", "accuracy", "95% CI", "balanced acc.", "95% CI", "F1", "ROC AUC",
         "95% CI", "Brier"], perf_rows, caption="Performance overall"))
    breakdowns = ctx["fairness"]["breakdowns"]
    ordered = sorted(breakdowns.items(), key=lambda kv: kv[1]["kind"] != "attribute")
    chart = []
    for key, b in ordered:
        kind = "unitary" if b["kind"] == "attribute" else "intersectional"
        section.add(Table(
            ["group", "n", "share", "selection rate", "95% CI", "TPR", "95% CI", "FPR",
             "95% CI", "in the metrics"],
            [[g["group"], g["count"], g["share"], g["selection_rate"],
              _fmt_ci(g["ci"]["selection_rate"]), g["tpr"], _fmt_ci(g["ci"]["tpr"]), g["fpr"],
              _fmt_ci(g["ci"]["fpr"]),
              "EXCLUDED: " + g["exclusion_reason"] if g["excluded"] else "yes"]
             for g in b["groups"]],
            caption=f"{key} ({kind}) on the {ctx['split_name']} split; rates count the "
                    f"favourable label {lab.fav}"))
        section.add(Table(["metric", "value", "95% CI"],
                          [[name, m["value"], _fmt_ci(m["ci"])]
                           for name, m in b["metrics"].items()],
                          caption=f"{key}: disparity over the eligible groups"))
        chart += [(f"{key}={g['group']}", g["selection_rate"] or 0.0, g["excluded"])
                  for g in b["groups"] if g["count"]]
    gov = ctx["governance"]
    # The line the gate applies, not a hard-coded four fifths: the configured minimum.
    ratio_min = next((g["threshold"] for g in gov["gates"]
                      if g["metric"] == "disparate_impact_ratio"), None)
    rule = "no disparate impact gate" if ratio_min is None else \
        f"the disparate impact gate's minimum, {ratio_min:g} × the highest rate in the chart"
    section.add(Figure(
        selection_rate_svg(chart, f'Selection rate (share given "{lab.favourable}") by group',
                           ratio_min),
        f"Selection rate by group (hatched: excluded from the metrics; dashed: {rule})."))
    return section


def _ethics(ctx: dict[str, Any], lab) -> Section:
    gov, spec = ctx["governance"], ctx["spec"]
    scan = gov["privacy_scan"]
    items = [
        "Sensitive data: the attributes " + ", ".join(spec.sensitive) + " are used to evaluate "
        "the model" + ("" if sensitive_inputs(ctx) else " and are not model inputs") + ".",
    ]
    if (need := _input_sentence(ctx)) is not None:
        items.append(need + " Using a protected attribute in each decision can be unlawful "
                     "disparate treatment for some uses (for example employment or credit); "
                     "review that before any use.")
    pii = ctx["ingest"].get("pii_columns") or {}
    items.append("Personal data: " + (", ".join(f"{c} ({p})" for c, p in sorted(pii.items()))
                                      if pii else "no column declared PII")
                 + f"; the evidence scan found {scan['findings']} finding(s).")
    fairness_fail = [g for g in gov["gates"] if g["kind"] == "fairness" and not g["passed"]]
    items += [f"Fairness: {g['id']} = "
              + ("undefined" if g["value"] is None else f"{g['value']:.4f}")
              + f" fails {g['direction']} {g['threshold']:g} "
              f"({'advisory' if g['advisory'] else 'blocking'})" for g in fairness_fail] or [
        "Fairness: every fairness gate passes on the evaluated attributes."]
    items.append(f"Errors fall on people: a false negative withholds the favourable label "
                 f"{lab.fav} from someone whose true label is \"{lab.favourable}\"; a false "
                 f"positive gives it to someone whose true label is {lab.unfavourable}. TPR and "
                 "FPR per group (Quantitative analyses) show who bears which.")
    return Section("Ethical considerations").add(items)


def _caveats(ctx: dict[str, Any], audit: dict) -> Section:
    card, fair = ctx["card"], ctx["fairness"]
    items = list(card.limitations)
    small = sorted({f"{k}={g['group']}" for k, b in fair["breakdowns"].items()
                    for g in b["groups"] if g["excluded"] and g["count"]})
    if small:
        items.append("Too small to judge (reported, left out of the metrics and gates; treat "
                     "their rates as unreliable): " + ", ".join(small) + ".")
    items.append("The bias audit section gives an LL 144 audit's figures; LL 144 requires an "
                 "independent auditor, which this pipeline is not.")
    if card.audit_date:
        items.append(f"Audit again by {ll144.next_due(card.audit_date)} (a year after the audit "
                     f"date {card.audit_date}), and after any change to the model or its data.")
    items.append(f"The figures hold for the {ctx['split_name']} split of this dataset; "
                 "populations unlike it are out of scope.")
    return Section("Caveats and recommendations").add(items)


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

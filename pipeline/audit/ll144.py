"""The NYC Local Law 144 bias audit (rules: 6 RCNY § 5-300 to 5-304), from per-row scores.

What the rules ask of a bias audit's summary, and where it comes from here:

* selection rates and impact ratios for sex, race/ethnicity and their intersection. The
  categories are the dataset's sensitive attributes whose name (or source column) says sex or
  gender, race or ethnicity; a dataset without one is said to lack it, never guessed at;
* for a tool that outputs a score, the scoring rate: the share of a category scoring above
  the median score of the full sample (every row evaluated), and its impact ratio;
* the number of rows in an unknown category (not counted in the rates);
* categories under 2% of the data (`governance.model_card.audit_min_share`) may be left out
  of the impact ratios: they are reported with their counts and rates and the reason;
* the audit date (`governance.model_card.audit_date`, from config so that the card is the same
  bytes for the same inputs) and the next audit's due date, one year later (a bias audit may
  be at most a year old); the tool's distribution date (`distribution_date`);
* the source of the data and whether it is historical data of the tool's use or test data.

Impact ratio = rate ÷ the highest rate among the counted categories
(`fairness.impact.impact_ratios`, the formula the fairness report uses too). A selection is a
score ≥ the decision threshold, exactly as the metrics stage decides.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import numpy as np

from pipeline.audit.document import Section, Table
from pipeline.fairness.impact import impact_ratios

SEP = "|"  # as the fairness report's intersections (pipeline.fairness.groups)
_SEX = re.compile(r"(^|[^a-z])(sex|gender)", re.I)
_RACE = re.compile(r"(^|[^a-z])(race|ethnic)", re.I)
CATEGORIES = (("sex", _SEX), ("race/ethnicity", _RACE))


def categories(spec) -> dict[str, str | None]:
    """{"sex": attribute or None, "race/ethnicity": attribute or None}: the first declared
    sensitive attribute whose name or source column names the category."""
    out: dict[str, str | None] = {}
    for name, pattern in CATEGORIES:
        out[name] = next((a for a, s in spec.sensitive.items()
                          if pattern.search(a) or pattern.search(s.column)), None)
    return out


def next_due(audit_date: str) -> str:
    """One year after `audit_date`; 29 February gives 28 February (never later than a year)."""
    d = dt.date.fromisoformat(audit_date)
    try:
        return d.replace(year=d.year + 1).isoformat()
    except ValueError:
        return d.replace(year=d.year + 1, day=28).isoformat()


def _groups(frame, columns: list[str]):
    """(category labels in declared order, each row's label; NA where any part is unknown)."""
    import pandas as pd

    per_column, key = [], None
    for c in columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            per_column.append([str(x) for x in s.cat.categories])
        else:
            per_column.append(sorted({str(x) for x in s.dropna()}))
        part = s.astype("string")
        key = part if key is None else key + SEP + part
    return [SEP.join(p) for p in itertools.product(*per_column)], key


def breakdown(frame, columns: list[str], *, threshold: float, median: float,
              min_share: float) -> dict[str, Any]:
    """One LL 144 table: per category the count, share, selection rate, scoring rate and the
    impact ratio of each, over `frame` (one split: columns `score` and the attributes)."""
    n = len(frame)
    score = frame["score"].to_numpy()
    labels, key = _groups(frame, columns)
    known = key.notna().to_numpy()
    rows = []
    for g in labels:
        mask = (key == g).fillna(False).to_numpy()
        count = int(mask.sum())
        rows.append({"group": g, "count": count, "share": count / n if n else 0.0,
                     "selected": int((score[mask] >= threshold).sum()),
                     "above_median": int((score[mask] > median).sum())})
    for r in rows:
        r["selection_rate"] = r["selected"] / r["count"] if r["count"] else None
        r["scoring_rate"] = r["above_median"] / r["count"] if r["count"] else None
    counted = {r["group"] for r in rows if r["count"] and r["share"] >= min_share}
    sel = impact_ratios({r["group"]: r["selection_rate"] for r in rows}, counted)
    sco = impact_ratios({r["group"]: r["scoring_rate"] for r in rows}, counted)
    for r in rows:
        r["selection_impact_ratio"], r["scoring_impact_ratio"] = sel[r["group"]], sco[r["group"]]
        r["included"] = r["group"] in counted
        r["reason"] = "" if r["included"] else (
            "no rows" if not r["count"] else f"share {r['share']:.2%} < {min_share:.0%}")
    return {"key": "*".join(columns), "columns": list(columns), "unknown": int((~known).sum()),
            "groups": rows}


def audit(frame, spec, *, threshold: float, min_share: float) -> dict[str, Any]:
    """The LL 144 figures for one split's rows: sex, race/ethnicity, their intersection."""

    cats = categories(spec)
    score = frame["score"].to_numpy()
    median = float(np.median(score)) if len(score) else float("nan")
    attrs = [a for a in cats.values() if a is not None]
    plan = [[a] for a in attrs] + ([attrs] if len(attrs) == 2 else [])
    return {
        "n": len(frame), "median": median, "above_median": int((score > median).sum()),
        "categories": cats,
        "breakdowns": [breakdown(frame, cols, threshold=threshold, median=median,
                                 min_share=min_share) for cols in plan],
    }


_HEADER = ["category", "n", "share", "selected", "selection rate", "impact ratio",
           "above median", "scoring rate", "impact ratio (scoring)", "status", "reason"]


def section(result: dict, *, card, spec, split_name: str, split_report: dict,
            files: list[dict], fav: str, threshold: float):
    """The card's LL 144 section. `fav` names the favourable label in words."""

    date = card.audit_date
    cats = result["categories"]
    out = Section("Bias audit (NYC Local Law 144)").add(
        f"The figures the rules of NYC Local Law 144 ask a bias audit's summary of results "
        f"to give, computed on the {split_name} split. The law requires an independent "
        "auditor to conduct the audit: this section is evidence for one, not the audit itself.")
    strat = ", ".join(split_report.get("stratified_by", [])) or "nothing"
    source = spec.source.provenance or spec.source.dir
    data_rows = [
        ["audit date", date or "not set (governance.model_card.audit_date)"],
        ["next audit due", next_due(date) if date else "unknown: no audit date"],
        ["distribution date of the tool",
         card.distribution_date or "not set (governance.model_card.distribution_date)"],
        ["data source", f"{source}; files: " + ", ".join(f["path"] for f in files)],
        ["historical or test data", "test data (see below)"],
        ["rows evaluated", result["n"]],
        ["selection", f"the model gives the favourable label {fav} (score ≥ {threshold:g})"],
        ["median score (full sample)", result["median"]],
        ["rows scoring above the median", result["above_median"]],
    ]
    data_rows += [[f"{name} attribute", f"'{a}'" if a else "none declared"]
                  for name, a in cats.items()]
    data_rows += [[f"rows in an unknown category: {b['key']}", b["unknown"]]
                  for b in result["breakdowns"]]
    out.add(Table(["item", "value"], data_rows))
    out.add(
        "Test data, not historical data: LL 144 calls historical data the data collected "
        "while the tool is used to assess candidates, and this card is made before the model "
        f"is registered or served, so no such data exists for it. The test data is the "
        f"{split_name} split of {source}: {result['n']} rows held out by the split stage "
        f"(seed {split_report.get('seed')}, stratified by {strat}) and never used to train "
        "the model.")
    missing = [name for name, a in cats.items() if a is None]
    if missing:
        what = " nor a ".join(missing)
        out.add(f"The dataset declares {'neither a' if len(missing) > 1 else 'no'} {what} "
                f"attribute: this audit cannot report selection rates, scoring rates or impact "
                f"ratios for {' or '.join(missing)}, nor for the intersection of sex and "
                "race/ethnicity. Attributes are recognised by name (sex or gender; race or "
                "ethnicity), in the attribute's name or its source column.")
    out.add(f"Scoring rate: share of a category whose score is above the median score of all "
            f"{result['n']} rows (a score equal to the median is not above it). Impact ratio: "
            "the category's rate ÷ the highest rate among the categories counted. Categories "
            f"under {card.audit_min_share:.0%} of the rows are reported with their counts and "
            "rates but left out of the impact ratios, as the rules allow for a category that "
            "small (status EXCLUDED, with the share as the reason). Rows in an unknown category "
            "are not counted in any rate.")
    for b in result["breakdowns"]:
        name = " × ".join(next((n for n, a in cats.items() if a == c), c) for c in b["columns"])
        out.add(Table(_HEADER, [
            [g["group"], g["count"], g["share"], g["selected"], g["selection_rate"],
             g["selection_impact_ratio"], g["above_median"], g["scoring_rate"],
             g["scoring_impact_ratio"], "included" if g["included"] else "EXCLUDED",
             g["reason"]] for g in b["groups"]],
            caption=f"{name} (attribute {b['key']}; {b['unknown']} row(s) in an unknown "
                    "category)"))
    return out

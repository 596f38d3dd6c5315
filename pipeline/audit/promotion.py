"""The promotion policy (conf/registry/ `promotion`): does a VALIDATED candidate beat the
champion? Pure functions over the figures the metrics stage writes; the register stage feeds
them the candidate's figures and the champion's on the same split.

    cand = figures(spec, performance["test"], fairness_summary["test"], keys)
    result = compare(spec, cand, champ)          # champ None: no champion yet
    winner = best(pool)                          # the round's best eligible candidate

Primary metric, MLflow `MetricThreshold` semantics (sign s = +1 if greater is better, else −1;
delta = s · (candidate − champion)):
    passes  ⇔  delta ≥ min_absolute_change            (when set)
           and delta ≥ min_relative_change · |champion|   (when set; champion = 0 → delta > 0)
           and delta > 0                               (when neither is set)

Fairness non-regression, per limit and breakdown key (attribute or intersection):
regression = champion − candidate for ratios (higher is fairer), candidate − champion for
differences; fails when regression > max_regression, or when the candidate's value is undefined
(fail closed). An undefined champion value imposes no limit.
"""

from __future__ import annotations

from typing import Any

from pipeline.audit.document import Section, Table, to_html, to_markdown
from pipeline.fairness.names import SHORT, higher_is_fairer

DIGITS = 6  # the metrics files' rounding: compare at that precision, not float noise


def figures(spec, performance: dict, fairness: dict, keys: list[str]) -> dict[str, Any]:
    """The figures the policy compares: `performance`/`fairness` are one split's entries of
    metrics/performance.json and metrics/fairness.json; `keys` every breakdown produced."""
    fair = {}
    for limit in spec.fairness:
        for key in (keys if limit.attributes == "all" else limit.attributes):
            fair[f"{limit.metric}:{key}"] = fairness.get(key, {}).get(
                SHORT.get(limit.metric, limit.metric))
    return {"metric": spec.metric, "value": performance.get(spec.metric), "fairness": fair}


def compare(spec, candidate: dict, champion: dict | None) -> dict[str, Any]:
    """{passed, margin, reasons, candidate, champion}: margin is delta (the signed improvement;
    the candidate's own value, signed, when there is no champion)."""
    sign = 1 if spec.greater_is_better else -1
    value = candidate["value"]
    if value is None:
        return _result(False, None, [f"{spec.metric} is undefined for the candidate"],
                       candidate, champion)
    if champion is None:
        return _result(True, round(sign * value, DIGITS), ["no champion yet"], candidate, None)
    reasons, passed = [], True
    base = champion["value"]
    if base is None:
        reasons.append(f"{spec.metric} undefined for the champion: no metric requirement")
        delta = round(sign * value, DIGITS)
    else:
        delta = round(sign * (value - base), DIGITS)
        need = []
        if spec.min_absolute_change is not None:
            need.append(("min_absolute_change", spec.min_absolute_change))
        if spec.min_relative_change is not None:
            need.append(("min_relative_change",
                         round(spec.min_relative_change * abs(base), DIGITS)))
        ok = all(delta >= v for _, v in need) if need else delta > 0
        if need and spec.min_relative_change is not None and base == 0:
            ok = ok and delta > 0
        passed &= ok
        what = " and ".join(f"{n} {v}" for n, v in need) or "any improvement"
        reasons.append(f"{spec.metric} {value} vs champion {base}: change {delta:+}"
                       f" {'meets' if ok else 'does not meet'} {what}")
    for limit in spec.fairness:
        for key, cand in candidate["fairness"].items():
            if not key.startswith(f"{limit.metric}:"):
                continue
            champ = champion["fairness"].get(key)
            if cand is None:
                passed = False
                reasons.append(f"{key} is undefined for the candidate")
            elif champ is not None:
                regression = round((champ - cand) if higher_is_fairer(limit.metric)
                                   else (cand - champ), DIGITS)
                if regression > limit.max_regression:
                    passed = False
                    reasons.append(f"{key} {cand} vs champion {champ}: {regression} less fair "
                                   f"than allowed ({limit.max_regression})")
    return _result(passed, delta, reasons, candidate, champion)


def _result(passed: bool, margin, reasons, candidate, champion) -> dict[str, Any]:
    return {"passed": passed, "margin": margin, "reasons": reasons,
            "candidate": candidate, "champion": champion}


def best(pool: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best of a round's candidates that passed against the same anchor: largest margin,
    then the lowest model sha256 — a total order, so the outcome
    does not depend on the order they registered in. Each entry: {version, margin, sha}."""
    ranked = [c for c in pool if c.get("margin") is not None]
    if not ranked:
        return None
    return min(ranked, key=lambda c: (-c["margin"], c["sha"]))


def addendum(comparison: dict[str, Any], model: str, version: str) -> tuple[str, str]:
    """The model card's promotion section, as (Markdown, HTML): uploaded next to the card
    governance judged (which cannot hold it: the comparison happens at registration)."""

    champion = comparison.get("champion") or {}
    candidate = comparison.get("candidate") or {}
    rows = [[candidate.get("metric"), candidate.get("value"), champion.get("value")]]
    rows += [[k, v, (champion.get("fairness") or {}).get(k)]
             for k, v in (candidate.get("fairness") or {}).items()]
    anchor = comparison.get("anchor_version")
    where = ("recorded figures, same split" if not comparison.get("rescored") else
             f"both models re-scored on {comparison.get('rows')} rows of the candidate's "
             f"{comparison.get('split')} split the champion never trained on "
             f"({comparison.get('rows_seen_by_anchor')} seen rows left out)")
    outcome = "passed" if comparison.get("passed") else "did not pass"
    section = Section("Promotion decision").add(
        f"Version {version} of {model} {outcome} the promotion policy against "
        f"{'champion version ' + anchor if anchor else 'no champion (first eligible version)'}"
        f"; compared on {where}. Champion after registration: version "
        f"{comparison.get('champion_after') or '—'}.",
        list(comparison.get("reasons") or []),
        Table(["figure", f"version {version}", f"champion {anchor or '—'}"], rows,
              "primary metric, then fairness non-regression figures"),
    )
    title = f"Model card addendum: promotion of {model} version {version}"
    return to_markdown(title, [section]), to_html(title, [section])

"""Governance gates: criteria from config checked against the metrics stage's outputs.

Each criterion is checked per attribute (fairness) or once (performance) and gives a result
with the value, its confidence interval, the number compared (the estimate, or the pessimistic
end of the interval when gating on the bound), threshold, direction and outcome.

Fail closed: an undefined value (None — e.g. fewer than two eligible groups) fails; a value
exactly at the threshold passes (the four-fifths rule is "at least 0.8").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.fairness.names import SHORT


@dataclass(frozen=True)
class GateResult:
    id: str
    kind: str  # "fairness" | "performance"
    metric: str
    attribute: str | None
    value: float | None
    ci: dict[str, float | None]
    basis: str  # "estimate" | "ci_low" | "ci_high"
    compared: float | None
    threshold: float
    direction: str  # ">=" | "<="
    passed: bool
    enforcement: str  # what a failure does: "block" / "warn" (global), or "advisory"
    advisory: bool  # criterion `enforcement: warn`: a failure is reported, never rejects
    hard: bool  # criterion `enforcement: block`: a failure refuses registration even under warn
    reason: str
    excluded_groups: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def short(self) -> str:
        """`dir:sex`, `acc`: the metrics files' short names, for a `dvc exp show` column."""
        name = SHORT.get(self.metric, self.metric)
        return f"{name}:{self.attribute}" if self.attribute else name


def outcome(passed: bool, advisory: bool) -> str:
    """PASS, WARN (an advisory gate failed) or FAIL: what cards and registry tags show."""
    return "PASS" if passed else ("WARN" if advisory else "FAIL")


def _compare(c, value, ci, use_bound: bool) -> tuple[str, float | None, float, str]:
    if c.min is not None:
        basis = "ci_low" if use_bound else "estimate"
        compared = ci.get("low") if use_bound else value
        return basis, compared, c.min, ">="
    basis = "ci_high" if use_bound else "estimate"
    compared = ci.get("high") if use_bound else value
    if compared is not None:
        compared = abs(compared)  # gates bound the absolute size of a difference
    return basis, compared, c.max, "<="


def _result(gov, c, kind, attribute, value, ci, excluded) -> GateResult:
    use_bound = gov.use_confidence_bound if c.use_confidence_bound is None \
        else c.use_confidence_bound
    basis, compared, threshold, direction = _compare(c, value, ci, use_bound)
    if compared is None:
        passed = False
        why = "the CI bound is undefined" if use_bound and value is not None else (
            "the value is undefined (e.g. fewer than two eligible groups)")
        reason = f"{why}: fails closed"
    else:
        passed = compared >= threshold if direction == ">=" else compared <= threshold
        on = f" on {attribute}" if attribute else f" on the {gov.split} split"
        reason = (f"{c.metric}{on} = {compared:.4g} ({basis.replace('_', ' ')}) "
                  f"{'meets' if passed else 'fails'} {direction} {threshold:g}")
    advisory, hard = c.enforcement == "warn", c.enforcement == "block"
    enforcement = "advisory" if advisory else ("block" if hard else gov.enforcement)
    ident = f"{kind}:{c.metric}" + (f":{attribute}" if attribute else "")
    return GateResult(
        id=ident, kind=kind, metric=c.metric, attribute=attribute, value=value, ci=ci,
        basis=basis, compared=compared, threshold=threshold, direction=direction, passed=passed,
        enforcement=enforcement, advisory=advisory, hard=hard, reason=reason,
        excluded_groups=excluded,
    )


def evaluate(gov, fairness: dict, performance: dict, performance_ci: dict) -> list[GateResult]:
    """`fairness`: the metrics stage's fairness report for the gated split (its `breakdowns`);
    `performance`: that split's performance metrics; `performance_ci`: their intervals."""
    results = []
    breakdowns = fairness["breakdowns"]
    for c in gov.fairness:
        keys = list(breakdowns) if c.attributes == "all" else list(c.attributes)
        for key in keys:
            b = breakdowns.get(key)
            m = None if b is None else b["metrics"].get(c.metric)
            if m is None:
                results.append(_result(gov, c, "fairness", key, None, {}, []))
                continue
            results.append(_result(gov, c, "fairness", key, m["value"],
                                   {"low": m["ci"]["low"], "high": m["ci"]["high"]},
                                   b.get("excluded_groups", [])))
    for c in gov.performance:
        ci = performance_ci.get(c.metric, {"low": None, "high": None})
        results.append(_result(gov, c, "performance", None, performance.get(c.metric),
                               {"low": ci.get("low"), "high": ci.get("high")}, []))
    return results


def judge(gov, fairness_report: dict, performance: dict) -> list[GateResult]:
    """The gates of `gov` on the metrics stage's files (`reports/fairness.json` and
    `metrics/performance.json`, parsed) for the gated split. The governance stage and the
    register stage (which re-derives the verdict rather than trusting it) both call this.
    KeyError/TypeError when the files lack what the gates need."""
    split = gov.split
    return evaluate(gov, fairness_report["splits"][split], performance[split],
                    fairness_report["performance_ci"][split])


def verdict(results: list[GateResult], privacy_findings: int) -> tuple[str, list[str]]:
    """VALIDATED only if every non-advisory gate passed and the privacy scan found nothing."""
    reasons = [r.reason if r.attribute is None or r.attribute in r.reason
               else f"{r.attribute}: {r.reason}"
               for r in results if not r.passed and not r.advisory]
    if privacy_findings:
        reasons.append(f"privacy scan: {privacy_findings} finding(s) of personal data")
    return ("REJECTED" if reasons else "VALIDATED"), reasons

"""Impact ratios (NYC Local Law 144 style): each group's selection rate ÷ the highest selection
rate among the groups that count.

The one formula, with the rule for which groups count as a parameter. It has two uses:

* `disparity.metric_impact_ratios` — the fairness report's column: groups the fairness metrics
  exclude (`metrics.min_count` / `metrics.min_share`, 1% by default) do not count;
* `audit.ll144.breakdown` — the model card's LL 144 bias audit (selection and scoring rates):
  categories under `governance.model_card.audit_min_share` of the split (2% by default) do
  not count.

No imports: the governance stage uses it without loading the fairness metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def impact_ratios(rates: Mapping[str, float | None],
                  counted: Collection[str]) -> dict[str, float | None]:
    """``rate_g / max(rate_h for h in counted)`` for every group g in `rates`.

    None for a group not counted, a group without a rate, and every group when the highest
    counted rate is 0 or no group counts (a ratio to nothing is undefined, not parity).
    """
    kept = {g: float(r) for g, r in rates.items() if g in counted and r is not None}
    top = max(kept.values(), default=0.0)
    return {g: (kept[g] / top if g in kept and top > 0 else None) for g in rates}

"""Example fairness-metric plug-ins, loaded by the tests through ``_target_``.

A plug-in is any importable callable ``metric(stats, **options) -> float | None`` over the
per-group `GroupStats` of one breakdown. It must honour group exclusion (skip
``s.excluded``) and return None when fewer than two groups have a defined value, so the
governance gate fails closed. Config example::

    extra_metrics:
      - name: ppv_difference
        _target_: tests.fairness_plugins.positive_predictive_value_difference
        min_selected: 5
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.fairness.groups import GroupStats


def false_negative_rate_difference(stats: Sequence[GroupStats]) -> float | None:
    """``max_g FNR_g - min_g FNR_g`` with ``FNR_g = (positives_g - TP_g) / positives_g``.

    Groups without positives have no FNR and are skipped. Equal to the equal opportunity
    difference, since FNR = 1 - TPR.
    """
    rates = [
        (s.positives - s.true_positives) / s.positives
        for s in stats
        if not s.excluded and s.positives > 0
    ]
    if len(rates) < 2:
        return None
    return max(rates) - min(rates)


def positive_predictive_value_difference(
    stats: Sequence[GroupStats], *, min_selected: int = 1
) -> float | None:
    """Predictive parity gap: ``max_g PPV_g - min_g PPV_g`` with ``PPV_g = TP_g / selected_g``.

    Only groups with at least `min_selected` positive predictions take part (PPV of a group
    with few selections is noise).
    """
    rates = [
        s.true_positives / s.selected
        for s in stats
        if not s.excluded and s.selected >= max(min_selected, 1)
    ]
    if len(rates) < 2:
        return None
    return max(rates) - min(rates)

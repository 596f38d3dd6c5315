"""Disparity metrics by name, and the plug-in extension point.

A disparity metric is any callable ``metric(stats: Sequence[GroupStats], **kwargs) -> float |
None`` that returns None when the metric is undefined (callers fail closed on None). The four
built-ins live in `DISPARITY_METRICS`. A further metric is added from config, with no edit to
this package, by naming a callable with a Hydra-style ``_target_``::

    fairness:
      extra_metrics:
        - name: ppv_difference
          _target_: my_project.metrics.positive_predictive_value_difference
          min_selected: 5          # passed to the callable as a keyword argument

`resolve_metric` builds it with `hydra.utils.instantiate` (``_partial_``: the callable bound
to its options, see `runtime.targets`), checks the options bind, and returns ``(name, fn)``
where ``fn(stats)`` is ready to call. `evaluate_metric` calls it and normalises the result.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from pipeline.fairness import disparity
from pipeline.fairness.groups import GroupStats
from pipeline.runtime.errors import ConfigError
from pipeline.runtime.targets import instantiate_target

DisparityMetric = Callable[[Sequence[GroupStats]], float | None]

#: Built-in disparity metrics (read-only).
DISPARITY_METRICS: Mapping[str, DisparityMetric] = MappingProxyType(
    {
        "statistical_parity_difference": disparity.statistical_parity_difference,
        "disparate_impact_ratio": disparity.disparate_impact_ratio,
        "equal_opportunity_difference": disparity.equal_opportunity_difference,
        "equalized_odds_difference": disparity.equalized_odds_difference,
    }
)


class MetricSpecError(ConfigError, ValueError):
    """A metric spec cannot be resolved (unknown name, bad ``_target_``, bad kwargs)."""


MetricSpec = str | Mapping[str, Any] | DisparityMetric | tuple[str, DisparityMetric]


def _plain(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of `spec` (converting an OmegaConf DictConfig, nested lists included)."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a project dependency
        return dict(spec)
    if isinstance(spec, DictConfig):
        return OmegaConf.to_container(spec, resolve=True)  # type: ignore[return-value]
    return dict(spec)


def resolve_metric(spec: MetricSpec) -> tuple[str, DisparityMetric]:
    """Resolve a metric spec to ``(name, fn)`` with ``fn(stats) -> float | None``.

    `spec` is one of:
      * a built-in name, e.g. ``"equal_opportunity_difference"``;
      * a mapping ``{"name": ..., "_target_": "module.callable", **kwargs}``; the callable is
        imported and bound to the kwargs (without ``_target_``, ``name`` must be a built-in
        and no kwargs are allowed);
      * a callable (named by its ``__name__``) or a ``(name, callable)`` pair, for code use.

    Raises MetricSpecError (a ConfigError and a ValueError) naming what is wrong.
    """
    if isinstance(spec, str):
        if spec not in DISPARITY_METRICS:
            raise MetricSpecError(
                f"unknown fairness metric {spec!r}; built-ins are {sorted(DISPARITY_METRICS)} "
                "(add others with {name: ..., _target_: module.callable})"
            )
        return spec, DISPARITY_METRICS[spec]
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        name, fn = spec
        if not callable(fn):
            raise MetricSpecError(f"metric {name!r}: {fn!r} is not callable")
        return name, fn
    if isinstance(spec, Mapping):
        kwargs = _plain(spec)
        name = kwargs.pop("name", None)
        target = kwargs.pop("_target_", None)
        if not isinstance(name, str) or not name:
            raise MetricSpecError(f"metric spec {spec!r} needs a non-empty string 'name'")
        if target is None:
            if kwargs:
                raise MetricSpecError(
                    f"metric {name!r}: options {sorted(kwargs)} need a _target_ callable"
                )
            return resolve_metric(name)
        if name in DISPARITY_METRICS:
            raise MetricSpecError(
                f"metric name {name!r} is a built-in; give the _target_ metric another name"
            )
        fn = instantiate_target({"_target_": target, **kwargs}, f"metric {name!r}",
                                partial=True, error=MetricSpecError)
        try:  # now, not at the first replicate: the options must fit fn(stats, **options)
            inspect.signature(fn.func).bind(None, *fn.args, **fn.keywords)
        except TypeError as exc:
            raise MetricSpecError(
                f"metric {name!r}: {target}(stats, **{kwargs}) does not bind: {exc}"
            ) from None
        except ValueError:  # no signature available (some builtins); let the call decide
            pass
        return name, fn
    if callable(spec):
        name = getattr(spec, "__name__", None)
        if not name or name == "<lambda>":
            raise MetricSpecError(f"metric callable {spec!r} has no usable name; pass (name, fn)")
        return name, spec
    raise MetricSpecError(f"cannot resolve fairness metric spec {spec!r}")


def resolve_metrics(specs: Sequence[MetricSpec]) -> dict[str, DisparityMetric]:
    """Resolve several specs, in order; raises MetricSpecError on a repeated name."""
    out: dict[str, DisparityMetric] = {}
    for spec in specs:
        name, fn = resolve_metric(spec)
        if name in out:
            raise MetricSpecError(f"fairness metric {name!r} is listed more than once")
        out[name] = fn
    return out


def evaluate_metric(name: str, fn: DisparityMetric, stats: Sequence[GroupStats]) -> float | None:
    """Call ``fn(stats)``; return a float, or None if undefined (None or NaN).

    Raises TypeError when a metric returns something that is not a real number or None, and
    ValueError on an infinite value, naming the metric.
    """
    value = fn(stats)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"fairness metric {name!r} returned {value!r}; expected a float or None")
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        raise ValueError(f"fairness metric {name!r} returned {value}")
    return value

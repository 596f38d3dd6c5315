"""Names of the built-in disparity metrics, importable without numpy/fairlearn (config
validation needs them in every stage, and importing fairlearn costs seconds)."""

BUILTIN_METRICS = (
    "statistical_parity_difference",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)

# Short keys in metrics/fairness.json (one `dvc exp show` column each).
SHORT = {
    "statistical_parity_difference": "spd",
    "disparate_impact_ratio": "dir",
    "equal_opportunity_difference": "eod",
    "equalized_odds_difference": "eqodds",
}


def higher_is_fairer(metric: str) -> bool:
    """Ratios (min / max, 1 = parity) improve upwards; differences (0 = parity) downwards."""
    return metric.endswith("_ratio")

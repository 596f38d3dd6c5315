"""Names of the built-in disparity metrics, importable without numpy/fairlearn (config
validation needs them in every stage, and importing fairlearn costs seconds)."""

BUILTIN_METRICS = (
    "statistical_parity_difference",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)

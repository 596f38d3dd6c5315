"""The unfitted model: `estimators` (preprocessing + the configured scikit-learn estimator)."""

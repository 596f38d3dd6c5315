"""Names of the performance metrics the metrics stage writes per split, with their direction;
importable without numpy/scikit-learn (config validation needs them in every stage)."""

# name -> greater is better (see pipeline.evaluation.performance for each formula)
PERFORMANCE_METRICS = {
    "acc": True,
    "bal_acc": True,
    "prec": True,
    "rec": True,
    "f1": True,
    "roc_auc": True,
    "avg_prec": True,
    "log_loss": False,
    "brier": False,
}

"""Where each stage writes, relative to the output root (the repo under DVC, Hydra's run dir
standalone). dvc.yaml names the same paths; a test keeps the two in step."""

INGESTED = "artifacts/ingest.parquet"
INGEST_REPORT = "reports/ingest.json"

SPLITS = ("train", "val", "test")
SPLIT = {s: f"artifacts/split/{s}.parquet" for s in SPLITS}
SPLIT_REPORT = "reports/split.json"

MODEL = "artifacts/model.pkl"
TRAIN_REPORT = "reports/train.json"

PERFORMANCE = "metrics/performance.json"  # DVC metrics: short keys, one table row per experiment
FAIRNESS = "metrics/fairness.json"
FAIRNESS_REPORT = "reports/fairness.json"  # full per-group tables with confidence intervals
# Per row of the evaluation splits: the score and the sensitive attributes, nothing else (the
# model card's LL 144 scoring rates need each row's score; not uploaded to the registry).
SCORES = "reports/scores.parquet"
EVAL_SPLITS = ("val", "test")
PLOTS = {
    **{f"roc_{s}": f"plots/roc_{s}.json" for s in EVAL_SPLITS},
    **{f"pr_{s}": f"plots/pr_{s}.json" for s in EVAL_SPLITS},
    **{f"calibration_{s}": f"plots/calibration_{s}.json" for s in EVAL_SPLITS},
    "confusion": "plots/confusion_test.json",
    "selection_rate": "plots/selection_rate_test.json",
}

GOVERNANCE_REPORT = "reports/governance.json"
GOVERNANCE_METRICS = "metrics/governance.json"
MODEL_CARD_MD = "reports/model_card.md"
MODEL_CARD_HTML = "reports/model_card.html"

# Everything the register stage uploads to MLflow besides the model. The governance stage scans
# exactly these (and its own outputs) for personal data before they can reach the registry.
UPLOADED_REPORTS = (
    INGEST_REPORT, SPLIT_REPORT, TRAIN_REPORT, FAIRNESS_REPORT, PERFORMANCE, FAIRNESS,
    *PLOTS.values(),
)

REGISTRATION = "reports/registration.json"  # what the registry answered (not DVC-tracked)
ATTESTATION = "reports/attestation.json"  # the signed statement register uploaded (likewise)
PROMOTION = "metrics/promotion.json"  # what follows from the inputs alone (DVC-tracked)

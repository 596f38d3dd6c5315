"""Where each stage writes, relative to the output root (the repo under DVC, Hydra's run dir
standalone). dvc.yaml names the same paths; a test keeps the two in step."""

INGESTED = "artifacts/ingest.parquet"
INGEST_REPORT = "reports/ingest.json"

SPLITS = ("train", "val", "test")
SPLIT = {s: f"artifacts/split/{s}.parquet" for s in SPLITS}
SPLIT_REPORT = "reports/split.json"

"""Monitor section (conf/monitor/): live fairness, drift and the verdict over the audit log
(`python -m pipeline.monitor`, see README: Monitoring)."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.base import Section


class DriftSpec(Section):
    """Feature and prediction drift against the training split; a limit of null only
    reports the figure, a number makes exceeding it an ALERT reason."""

    bins: int = Field(default=10, ge=2, le=100,
                      description="quantile bins of each numeric training feature (PSI)")
    psi_max: float | None = Field(default=0.25, gt=0,
                                  description="per feature; 0.25 is the usual 'major shift'")
    ks_max: float | None = Field(default=None, gt=0, le=1,
                                 description="KS statistic per numeric feature")
    prediction_psi_max: float | None = Field(
        default=0.25, gt=0, description="PSI of the predicted probability")


class MonitorSpec(Section):
    name: str
    log_dir: str = Field(min_length=1, description="the audit log (serve.audit.dir)")
    output_dir: str = Field(default="reports", min_length=1,
                            description="monitoring.json and monitoring.html go here")
    reference: str = Field(default="artifacts/split/train.parquet",
                           description="training data: the drift baseline")
    model: str = Field(default="artifacts/model.pkl",
                       description="the model whose predictions are judged (its sha256 picks "
                                   "the log's records; its scores on the reference are the "
                                   "prediction-drift baseline)")
    window_days: float | None = Field(
        default=None, gt=0, le=3650,
        description="consecutive windows of this length; null: one window over the range")
    min_records: int = Field(
        default=100, ge=1,
        description="a window with fewer predictions is insufficient evidence (never a pass)")
    min_outcomes: int = Field(
        default=100, ge=1,
        description="... and with fewer outcomes, the outcome-based gates are")
    drift: DriftSpec = DriftSpec()
    tag_registry: bool = Field(
        default=False,
        description="tag the registry's champion version with the verdict and reasons")
    tag_key: str = Field(default="monitoring", pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")

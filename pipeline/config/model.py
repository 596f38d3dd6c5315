"""Model and mitigation sections: one pydantic model per option, chosen by its `name` key."""

from __future__ import annotations

import importlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, model_validator

from pipeline.config.base import Section


class Estimator(Section):
    """A scikit-learn estimator: every field but `name` is an argument of `SKLEARN`'s
    constructor (pipeline.modelling.estimators passes them as they are, plus the seed)."""

    SKLEARN: ClassVar[str]  # "module.Class"
    # Not an estimator argument: train on a seeded, stratified sample of at most this many
    # rows (null: all). A declared choice for data whose encoded design matrix would not fit
    # in memory; the train report records it and the governance card shows it.
    max_train_rows: int | None = Field(default=None, ge=1000)

    def sklearn_class(self) -> type:
        module, _, cls = self.SKLEARN.rpartition(".")
        return getattr(importlib.import_module(module), cls)

    def sklearn_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name", "max_train_rows"})

    @model_validator(mode="after")
    def _sklearn_accepts(self, info: ValidationInfo) -> Estimator:
        # scikit-learn checks its arguments only in fit(), after the earlier stages' work and
        # as a traceback. Its own constraint table and checker, run here, refuse exactly what
        # fit() would, in its words, so every value it accepts stays valid and no copy of its
        # rules can drift on an upgrade. Both are private API (sklearn.utils._param_validation,
        # `_parameter_constraints`); tests/test_config_errors.py fails if an upgrade moves them. The
        # field bounds in the subclasses are this project's own, sometimes narrower, choices.
        # Skipped on request (config.load.validate) only in stages that never read `model`.
        if not (info.context or {}).get("check_estimator", True):
            return self
        from sklearn.utils._param_validation import (
            InvalidParameterError,
            validate_parameter_constraints,
        )

        cls = self.sklearn_class()
        for key, value in self.sklearn_params().items():
            try:
                validate_parameter_constraints(
                    {key: cls._parameter_constraints[key]}, {key: value},
                    caller_name=cls.__name__)
            except InvalidParameterError as e:
                raise ValueError(f"{key}: {e}") from None
        return self


class LogReg(Estimator):
    """sklearn LogisticRegression on one-hot categoricals and standardised numerics."""

    SKLEARN: ClassVar[str] = "sklearn.linear_model.LogisticRegression"
    name: Literal["logreg"]
    C: float = Field(gt=0, description="inverse regularisation strength")
    max_iter: int = Field(ge=1)
    class_weight: Literal["balanced"] | None = None


class HGB(Estimator):
    """sklearn HistGradientBoostingClassifier."""

    SKLEARN: ClassVar[str] = "sklearn.ensemble.HistGradientBoostingClassifier"
    name: Literal["hgb"]
    learning_rate: float = Field(gt=0, le=1)
    max_iter: int = Field(ge=1, description="boosting rounds")
    max_leaf_nodes: int = Field(ge=2)
    min_samples_leaf: int = Field(ge=1)
    l2_regularization: float = Field(ge=0)


class RF(Estimator):
    """sklearn RandomForestClassifier."""

    SKLEARN: ClassVar[str] = "sklearn.ensemble.RandomForestClassifier"
    name: Literal["rf"]
    n_estimators: int = Field(ge=1)
    max_depth: int | None = Field(default=None, ge=1)
    min_samples_leaf: int = Field(ge=1)
    # int: a number of features, float: a share of them, None: all, or "sqrt"/"log2". The type
    # is kept as given (2 features is not 2.0), and sklearn's own table decides what is valid.
    max_features: str | int | float | None = "sqrt"
    n_jobs: int = Field(default=1, ge=1, description="deterministic for any value; 1 by default")


ModelSpec = Annotated[LogReg | HGB | RF, Field(discriminator="name")]


class NoMitigation(Section):
    name: Literal["none"]


class ExponentiatedGradient(Section):
    """fairlearn reductions: a randomised ensemble meeting the constraint on the train split.

    Scores are the ensemble's expected positive rate (`_pmf_predict`), so no sensitive
    attribute is needed at predict time.
    """

    name: Literal["exponentiated_gradient"]
    constraint: Literal["demographic_parity", "equalized_odds"]
    attribute: str = Field(description="sensitive attribute the constraint is about")
    eps: float = Field(gt=0, le=1, description="allowed constraint violation")
    max_iter: int = Field(ge=1)


class ThresholdOptimizer(Section):
    """fairlearn post-processing: per-group thresholds on the base model's scores.

    Needs the sensitive attribute at predict time, so the request schema includes it.
    """

    name: Literal["threshold_optimizer"]
    constraint: Literal[
        "demographic_parity", "equalized_odds", "true_positive_rate_parity",
        "false_positive_rate_parity",
    ]
    attribute: str
    objective: Literal["accuracy_score", "balanced_accuracy_score"]
    grid_size: int = Field(ge=10, le=100_000)


MitigationSpec = Annotated[
    NoMitigation | ExponentiatedGradient | ThresholdOptimizer, Field(discriminator="name")
]


class MetricsSpec(Section):
    """Evaluation settings (validation and test splits)."""

    name: str
    threshold: float = Field(ge=0, le=1, description="score ≥ threshold → positive label")
    n_boot: int = Field(ge=0, le=10_000, description="bootstrap replicates for CIs (0 = none)")
    alpha: float = Field(gt=0, lt=1, description="CIs are (1 - alpha) percentile intervals")
    min_count: int = Field(ge=0, description="groups smaller than this are excluded from gates")
    min_share: float = Field(ge=0, lt=1, description="… or with a smaller share of the split")
    intersections: Literal["all"] | list[list[str]] = Field(
        default="all", description='"all": every sensitive attribute crossed (if 2+)'
    )
    calibration_bins: int = Field(ge=2, le=100)
    extra_fairness_metrics: list[dict[str, Any]] = Field(
        default_factory=list,
        description="plug-in disparity metrics: {name: ..., _target_: module.callable, ...}",
    )

    def crossings(self, attributes: list[str]) -> list[list[str]]:
        if self.intersections == "all":
            return [list(attributes)] if len(attributes) > 1 else []
        return [list(c) for c in self.intersections]

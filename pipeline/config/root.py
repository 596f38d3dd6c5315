"""The composed config (`params.yaml`), validated as a whole before a stage does any work."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.config.dataset import DatasetSpec
from pipeline.config.governance import GovernanceSpec
from pipeline.config.model import MetricsSpec, MitigationSpec, ModelSpec
from pipeline.config.monitor import MonitorSpec
from pipeline.config.privacy import PrivacyConfig
from pipeline.config.registry import RegistrySpec
from pipeline.config.serve import ServeSpec
from pipeline.config.split import SplitSpec
from pipeline.fairness.names import BUILTIN_METRICS


class Config(Section):
    seed: int = Field(ge=0, le=2**32 - 1)
    data: DatasetSpec
    split: SplitSpec
    model: ModelSpec
    mitigation: MitigationSpec
    metrics: MetricsSpec
    governance: GovernanceSpec
    privacy: PrivacyConfig
    registry: RegistrySpec
    serve: ServeSpec
    monitor: MonitorSpec

    @model_validator(mode="before")
    @classmethod
    def _dataset_defaults(cls, raw: Any) -> Any:
        """Settings that depend on the dataset default to its first declared sensitive
        attribute (`split.stratify_by`, `mitigation.attribute` given as null), so no shared
        default names a column only one dataset has."""
        if not isinstance(raw, dict):
            return raw
        sensitive = (raw.get("data") or {}).get("sensitive") if isinstance(
            raw.get("data"), dict) else None
        if not isinstance(sensitive, dict) or not sensitive:
            return raw  # the DatasetSpec's own error names what is missing
        first = next(iter(sensitive))
        raw = dict(raw)
        for section, key, value in (("split", "stratify_by", [first]),
                                    ("mitigation", "attribute", first)):
            node = raw.get(section)
            if isinstance(node, dict) and key in node and node[key] is None:
                raw[section] = {**node, key: value}
        return raw

    @model_validator(mode="after")
    def _cross_section(self) -> Config:
        for attr in self.split.stratify_by:
            if attr not in self.data.sensitive:
                raise ValueError(
                    f"split.stratify_by: '{attr}' is not a sensitive attribute of dataset "
                    f"'{self.data.name}' (expected one of: {', '.join(self.data.sensitive)})"
                )
        known = ", ".join(self.data.sensitive)
        attr = getattr(self.mitigation, "attribute", None)
        if attr is not None and attr not in self.data.sensitive:
            raise ValueError(
                f"mitigation.attribute: '{attr}' is not a sensitive attribute of dataset "
                f"'{self.data.name}' (expected one of: {known})"
            )
        for i, combo in enumerate(self.metrics.crossings(list(self.data.sensitive))):
            bad = [a for a in combo if a not in self.data.sensitive]
            if bad or len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError(
                    f"metrics.intersections.{i}: {combo} must name 2+ distinct sensitive "
                    f"attributes (expected from: {known})"
                )
        self._gates_name_produced_metrics()
        alias = self.serve.source.get("alias")
        if alias is not None and alias != self.registry.champion_alias:
            raise ValueError(
                f"serve.source.alias: '{alias}' is not the champion alias "
                f"'{self.registry.champion_alias}'; the server serves the champion only")
        return self

    def _produced(self) -> tuple[list[str], list[str]]:
        """(fairness metric names, breakdown keys) the metrics stage produces."""

        attrs = list(self.data.sensitive)
        keys = attrs + ["*".join(c) for c in self.metrics.crossings(attrs)]
        extra = [m.get("name") for m in self.metrics.extra_fairness_metrics]
        return [*BUILTIN_METRICS, *extra], keys

    def _gates_name_produced_metrics(self) -> None:
        """A gate or promotion limit on a metric or attribute the metrics stage does not
        produce is an error."""
        metrics, keys = self._produced()
        limits = [("governance.fairness", self.governance.fairness),
                  ("registry.promotion.fairness", self.registry.promotion.fairness)]
        for where, criteria in limits:
            for i, c in enumerate(criteria):
                if c.metric not in metrics:
                    raise ValueError(
                        f"{where}.{i}.metric: '{c.metric}' is not produced by the "
                        f"metrics stage (expected one of: {', '.join(metrics)}; add plug-ins "
                        "under metrics.extra_fairness_metrics)"
                    )
                if c.attributes != "all":
                    bad = [a for a in c.attributes if a not in keys]
                    if bad:
                        raise ValueError(
                            f"{where}.{i}.attributes: {bad} not produced by the metrics "
                            f"stage for dataset '{self.data.name}' (expected from: "
                            f"{', '.join(keys)})"
                        )

"""Pydantic models for every section of the composed config."""

from pipeline.config.dataset import ColumnSpec, DatasetSpec, SensitiveSpec, SourceSpec
from pipeline.config.load import validate
from pipeline.config.root import Config
from pipeline.config.split import SplitSpec

__all__ = [
    "ColumnSpec",
    "Config",
    "DatasetSpec",
    "SensitiveSpec",
    "SourceSpec",
    "SplitSpec",
    "validate",
]

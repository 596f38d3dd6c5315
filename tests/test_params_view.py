"""A stage sees only the params keys it declares, down to dotted keys (no processes)."""

from __future__ import annotations

import pytest

from pipeline.config import validate
from pipeline.runtime.runner import ParamsView
from tests.conftest import composed


@pytest.fixture(scope="module")
def config():
    return validate(composed())


def test_a_declared_dotted_key_and_what_lies_below_it_are_readable(config):
    view = ParamsView(config, ("data.target", "split"), "split")
    assert view.data.target.column == config.data.target.column
    assert view.split.seed == config.split.seed


def test_a_property_reads_through_the_view_so_its_keys_must_be_declared(config):
    narrow = ParamsView(config, ("data.features",), "train")
    with pytest.raises(AttributeError, match=r"'data.sensitive_as_features'"):
        narrow.data.model_features  # noqa: B018
    wide = ParamsView(config, ("data.features", "data.sensitive_as_features",
                               "data.sensitive"), "train")
    assert wide.data.model_features == config.data.model_features

"""PrivacyConfig validation, custom regex rules and plug-in detectors via ``_target_``."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.privacy import (
    PrivacyConfig,
    Scrubber,
    build_detectors,
)

HERE = Path(__file__).parent


def test_defaults_are_all_builtins():
    cfg = PrivacyConfig()
    assert cfg.builtin == ["email", "phone", "us_ssn", "credit_card", "ipv4", "ipv6", "iban"]
    assert cfg.custom == [] and cfg.plugins == []
    names = [d.name for d in build_detectors(None)]
    assert names == ["EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IPV4", "IPV6", "IBAN"]


def test_custom_regex_rule():
    s = Scrubber.from_config(
        {"builtin": [], "custom": [{"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}]}
    )
    assert s.scrub("badge EMP-004217 and EMP-12 ok") == "badge [EMPLOYEE_ID] and EMP-12 ok"
    assert [f.entity for f in s.scan("EMP-000001")] == ["EMPLOYEE_ID"]


def test_custom_rule_with_builtins_and_omegaconf():
    node = OmegaConf.create(
        {"builtin": ["email"], "custom": [{"name": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}]}
    )
    s = Scrubber.from_config(node)
    assert s.entities == ["EMAIL", "EMPLOYEE_ID"]
    assert s.scrub("EMP-123456 <a@example.com>") == "[EMPLOYEE_ID] <[EMAIL]>"


def test_empty_custom_matches_are_ignored():
    s = Scrubber.from_config({"builtin": [], "custom": [{"name": "OPT", "pattern": "x*"}]})
    assert s.scrub("abc xx d") == "abc [OPT] d"


def test_plugin_class_via_target(plugin_module_path):
    cfg = {"plugins": [{"_target_": f"{plugin_module_path}.UkNinoDetector"}]}
    s = Scrubber.from_config(cfg)
    assert "privacy_plugins" in sys.modules  # imported by the loader, not by this test
    assert s.entities[-1] == "UK_NINO"
    text = "NI number QQ 12 34 56 C is invalid, AB 12 34 56 C is fine; mail a@example.com"
    assert s.scrub(text) == ("NI number QQ 12 34 56 C is invalid, [UK_NINO] is fine; mail [EMAIL]")


def test_plugin_kwargs_and_factory(plugin_module_path):
    cfg = PrivacyConfig(
        builtin=[],
        plugins=[
            {"_target_": f"{plugin_module_path}.UkNinoDetector", "entity": "NINO"},
            {
                "_target_": f"{plugin_module_path}.make_keyword_detector",
                "name": "PROJECT",
                "words": ["Bluebird", "Nightjar"],
            },
        ],
    )
    s = Scrubber.from_config(cfg)
    assert s.scrub("Bluebird owner AB123456C") == "[PROJECT] owner [NINO]"

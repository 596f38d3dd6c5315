"""PII detection and scrubbing for every pipeline stage, the governance gate and the server.

Quick use::

    from pipeline.privacy import Scrubber, install_log_scrubbing

    scrubber = Scrubber.from_config({"custom": [{"name": "EMPLOYEE_ID", "pattern": r"EMP-\\d{6}"}]})
    scrubber.scrub("contact jane@example.com")      # -> 'contact [EMAIL]'
    install_log_scrubbing(scrubber)                  # every root handler now scrubs

Modules: ``detectors`` (built-in detectors), ``checksums`` (Luhn, mod-97, SSN rules),
``config`` (``PrivacyConfig``, ``build_detectors``, plug-ins), ``scrubber`` (``Scrubber``),
``logging_filter`` (``ScrubbingFilter``), ``columns`` (tabular column policies),
``evaluate`` (precision/recall against a labelled corpus). ``scrub``/``scrub_obj`` use a
process-wide scrubber with every built-in detector (``default_scrubber()``).
"""

from .checksums import iban_valid, luhn_valid, ssn_valid
from .columns import (
    SALT_ENV_VAR,
    ColumnPolicy,
    PIISaltMissing,
    apply_column_policies,
    apply_column_policy,
)
from .config import CustomRule, PrivacyConfig, build_detectors, instantiate_plugin
from .detectors import (
    BUILTIN_DETECTORS,
    CreditCardDetector,
    CustomRegexDetector,
    Detector,
    EmailDetector,
    IbanDetector,
    IPv4Detector,
    IPv6Detector,
    PhoneDetector,
    RegexDetector,
    UsSsnDetector,
)
from .findings import FileFinding, FileFindings, Finding, ScanReport
from .logging_filter import (
    ScrubbingFilter,
    default_scrubber,
    install_log_scrubbing,
    scrub,
    scrub_obj,
)
from .scrubber import Scrubber, resolve_overlaps

__all__ = [
    "BUILTIN_DETECTORS",
    "SALT_ENV_VAR",
    "ColumnPolicy",
    "CreditCardDetector",
    "CustomRegexDetector",
    "CustomRule",
    "Detector",
    "EmailDetector",
    "FileFinding",
    "FileFindings",
    "Finding",
    "IbanDetector",
    "IPv4Detector",
    "IPv6Detector",
    "PIISaltMissing",
    "PhoneDetector",
    "PrivacyConfig",
    "RegexDetector",
    "ScanReport",
    "Scrubber",
    "ScrubbingFilter",
    "UsSsnDetector",
    "apply_column_policies",
    "apply_column_policy",
    "build_detectors",
    "default_scrubber",
    "iban_valid",
    "install_log_scrubbing",
    "instantiate_plugin",
    "luhn_valid",
    "resolve_overlaps",
    "scrub",
    "scrub_obj",
    "ssn_valid",
]

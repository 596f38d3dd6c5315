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

# Lazy re-exports: config validation imports this package in every stage (see runtime.lazy).
from pipeline.runtime.lazy import lazy_exports

_EXPORTS = {
    "iban_valid": "pipeline.privacy.checksums",
    "luhn_valid": "pipeline.privacy.checksums",
    "ssn_valid": "pipeline.privacy.checksums",
    "SALT_ENV_VAR": "pipeline.privacy.columns",
    "ColumnPolicy": "pipeline.privacy.columns",
    "PIISaltMissing": "pipeline.privacy.columns",
    "apply_column_policies": "pipeline.privacy.columns",
    "apply_column_policy": "pipeline.privacy.columns",
    "CustomRule": "pipeline.config.privacy",
    "PrivacyConfig": "pipeline.config.privacy",
    "build_detectors": "pipeline.config.privacy",
    "instantiate_plugin": "pipeline.config.privacy",
    "BUILTIN_DETECTORS": "pipeline.privacy.detectors",
    "CreditCardDetector": "pipeline.privacy.detectors",
    "CustomRegexDetector": "pipeline.privacy.detectors",
    "Detector": "pipeline.privacy.detectors",
    "EmailDetector": "pipeline.privacy.detectors",
    "IbanDetector": "pipeline.privacy.detectors",
    "IPv4Detector": "pipeline.privacy.detectors",
    "IPv6Detector": "pipeline.privacy.detectors",
    "PhoneDetector": "pipeline.privacy.detectors",
    "RegexDetector": "pipeline.privacy.detectors",
    "UsSsnDetector": "pipeline.privacy.detectors",
    "FileFinding": "pipeline.privacy.findings",
    "FileFindings": "pipeline.privacy.findings",
    "Finding": "pipeline.privacy.findings",
    "ScanReport": "pipeline.privacy.findings",
    "ScrubbingFilter": "pipeline.privacy.logging_filter",
    "default_scrubber": "pipeline.privacy.logging_filter",
    "install_log_scrubbing": "pipeline.privacy.logging_filter",
    "scrub": "pipeline.privacy.logging_filter",
    "scrub_obj": "pipeline.privacy.logging_filter",
    "Scrubber": "pipeline.privacy.scrubber",
    "resolve_overlaps": "pipeline.privacy.scrubber",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

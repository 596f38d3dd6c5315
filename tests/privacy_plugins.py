"""Plug-in detectors for the privacy tests, loaded only through ``_target_`` config.

Nothing in ``pipeline/privacy`` knows about this module: the tests point a config entry
at it to prove that new detectors need no change to the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pipeline.privacy import Finding

# UK National Insurance number: two prefix letters, six digits, suffix A-D, often
# printed in pairs ("QQ 12 34 56 C"). D, F, I, Q, U, V never appear in the prefix, O is
# never the second letter, and the prefixes BG, GB, KN, NK, NT, TN, ZZ are not allocated.
_NINO = re.compile(
    r"(?<![\w])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])"
    r" ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![\w])"
)
_BAD_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


class UkNinoDetector:
    """Reports UK National Insurance numbers as ``UK_NINO`` (or ``entity`` if given)."""

    def __init__(self, entity: str = "UK_NINO"):
        self.name = entity

    def finditer(self, text: str) -> Iterator[Finding]:
        for m in _NINO.finditer(text):
            if m.group(1) not in _BAD_PREFIXES:
                yield Finding(self.name, m.start(), m.end())


class _KeywordDetector:
    def __init__(self, name: str, pattern: re.Pattern[str]):
        self.name = name
        self._pattern = pattern

    def finditer(self, text: str) -> Iterator[Finding]:
        for m in self._pattern.finditer(text):
            yield Finding(self.name, m.start(), m.end())


def make_keyword_detector(name: str, words: Iterable[str]) -> _KeywordDetector:
    """Factory function: a detector for whole-word occurrences of ``words``."""
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return _KeywordDetector(name, re.compile(rf"\b(?:{alternation})\b"))


class NotADetector:
    """Has no ``finditer``: loading it must fail with a clear error."""

    name = "BROKEN"

"""Built-in PII detectors.

Every detector is a small object with

* ``name`` – the entity type it reports (``"EMAIL"``, ``"PHONE"``, ...), also used for the
  ``[NAME]`` placeholder when scrubbing;
* ``finditer(text)`` – yields :class:`~pipeline.privacy.findings.Finding` objects;
* optionally ``might_match(text)`` – a cheap prefilter. The :class:`Scrubber` skips the
  detector when it returns ``False`` (no ``@`` means no e-mail address, no digit means
  no phone number ...). Plug-in detectors need not have it.

Patterns follow two rules that matter for both precision and speed:

1. Boundaries are explicit look-arounds (``(?<![\\w.])`` ...) instead of ``\\b`` so that a
   number glued to a word, a dash-joined id (``ORD-2024-000123``) or a longer dotted
   number (``1.2.3.4.5``) is not cut into a shorter, wrongly valid match.
2. Repetitions are possessive (``++``, ``{m,n}+``, Python >= 3.11) where backtracking could
   only produce a worse match; that keeps the regex engine linear on long log lines.

A regex only proposes candidates; check digits (Luhn, mod-97), structural rules (SSN
areas, digit counts) or :mod:`ipaddress` then accept or reject them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .checksums import IBAN_LENGTHS, iban_valid, luhn_valid, ssn_valid
from .findings import Finding

__all__ = [
    "BUILTIN_DETECTORS",
    "SHADOW",
    "CreditCardDetector",
    "CustomRegexDetector",
    "Detector",
    "EmailDetector",
    "IbanDetector",
    "IPv4Detector",
    "IPv6Detector",
    "PhoneDetector",
    "RegexDetector",
    "UsSsnDetector",
]

# Entity of a "shadow": a candidate that had the full shape of an identifier but failed
# its check (an IBAN with a bad checksum, a 16-digit card number failing Luhn). Shadows
# are never reported; during overlap resolution they mask the hits of *other* detectors
# inside them, so the digit groups of a bad IBAN do not come back as a phone number.
SHADOW = ""

_DIGIT = re.compile(r"\d")
_NON_DIGIT = re.compile(r"\D")


@runtime_checkable
class Detector(Protocol):
    """What the scrubber needs from a detector (built-in or plug-in)."""

    name: str

    def finditer(self, text: str) -> Iterator[Finding]: ...


class RegexDetector:
    """Base class: a compiled regex proposes candidates, :meth:`accept` confirms them.

    ``accept`` returns the span to report (usually ``m.span()``; some detectors trim it)
    or ``None`` to reject the candidate.

    **Anchors (speed).** Python's regex engine scans fast for a literal (``@``, ``-``,
    ``:``) but slowly for a class such as ``\\d``: it starts a match attempt at every
    digit, and log text is full of digits. A detector may therefore set ``anchor``, a
    cheap regex starting with a literal that every true match contains, plus
    ``back_chars``/``max_back`` describing what may precede the anchor inside a match.
    Each anchor hit is walked back to the start of the candidate and ``pattern`` is
    matched there. Results are the same as a plain ``pattern.finditer`` as long as a
    match always begins at the start of its run of ``back_chars`` (which the detectors'
    leading look-behinds guarantee).
    """

    name: str = ""
    pattern: re.Pattern[str]
    #: report rejected candidates as shadows (see :data:`SHADOW`)
    shadow_rejects: bool = False
    anchor: re.Pattern[str] | None = None
    back_chars: frozenset[str] = frozenset()
    max_back: int = 0

    def might_match(self, text: str) -> bool:
        """Prefilter; ``True`` means "run the regex". Default: a digit is present."""
        return _DIGIT.search(text) is not None

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        return m.span()

    def _matches(self, text: str) -> Iterator[re.Match[str]]:
        if self.anchor is None:
            yield from self.pattern.finditer(text)
            return
        search = self.anchor.search
        match = self.pattern.match
        back = self.back_chars
        max_back = self.max_back
        pos = 0
        while True:
            a = search(text, pos)
            if a is None:
                return
            i = a.start()
            j = i
            lim = max(pos, i - max_back)
            while j > lim and text[j - 1] in back:
                j -= 1
            m = match(text, j)
            if m is not None and m.end() > i:
                yield m
                pos = m.end()
            else:
                pos = i + 1

    def finditer(self, text: str) -> Iterator[Finding]:
        name = self.name
        accept = self.accept
        for m in self._matches(text):
            span = accept(m)
            if span is not None:
                yield Finding(name, span[0], span[1])

    def finditer_with_shadows(self, text: str) -> Iterator[Finding]:
        """Like :meth:`finditer`, plus shadow findings (entity :data:`SHADOW`) for
        rejected candidates when ``shadow_rejects`` is set. Used by the scrubber."""
        if not self.shadow_rejects:
            yield from self.finditer(text)
            return
        name = self.name
        accept = self.accept
        for m in self._matches(text):
            span = accept(m)
            if span is not None:
                yield Finding(name, span[0], span[1])
            else:
                yield Finding(SHADOW, m.start(), m.end())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


_DIGITS = frozenset("0123456789")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")


class EmailDetector(RegexDetector):
    """E-mail addresses: ``local@domain.tld``.

    Local part: letters, digits and ``._%+-``, starting with a letter or digit. Domain:
    one or more DNS labels (letters, digits, inner hyphens) and an alphabetic TLD of 2–24
    characters. ``user@localhost`` (no TLD) and ``@handle`` are not addresses.
    """

    name = "EMAIL"
    pattern = re.compile(
        r"(?<![\w.%+-])"  # start of the local part, not inside a longer token
        r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}+@"  # possessive: '@' can't be in the local part
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
        r"[A-Za-z]{2,24}(?![\w-])"
    )
    anchor = re.compile("@")
    back_chars = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
    max_back = 64

    def might_match(self, text: str) -> bool:
        return "@" in text


class PhoneDetector(RegexDetector):
    """Telephone numbers in three families, tried in this order at each position:

    * **International** – ``+`` or ``00``, a country code (1–3 digits, not starting with
      0), then digit groups separated by single spaces, dots or dashes, optionally with a
      ``(0)`` trunk or a parenthesised area code: ``+44 20 7946 0958``,
      ``+1-202-555-0143``, ``+49 (0)30 1234567``, ``+14155552671``, ``0049 30 1234567``.
      8–15 digits after the prefix (E.164 allows at most 15). With ``00`` at least one
      separator is required, so a bare ``0012345678`` order number is not a phone.
    * **North American** – ``(555) 123-4567``, ``555-123-4567``, ``555.123.4567``,
      optional leading ``1-``. The area code must start with 2–9 (NANP); the exchange is
      not checked because fictional 555 numbers routinely use ``1xx``.
    * **National with trunk 0** – ``020 7946 0958``, ``030 1234567``, ``01 23 45 67 89``,
      ``(020) 7946 0958``: 10–12 digits in at least two groups.

    What is *not* a phone: dates (``2024-01-15``: 4-2-2 digits, wrong shape), versions
    (``1.2.3``), ids glued to letters or dashes (``ORD-2024-000123``), decimals
    (``0.8423``), times, IPv4 addresses, SSNs (3-2-4) and card numbers (4-4-4-4, first
    digit not 0, too many digits).
    """

    name = "PHONE"
    # Written "first character, then look-behind": a pattern that starts with a character
    # class lets the regex engine skip quickly to candidate starts (2x faster than a
    # leading look-behind). Each branch re-reads the consumed first character with a
    # one-character look-behind, e.g. (?<=\+) for the '+' of an international number.
    pattern = re.compile(
        r"[+(0-9](?<![\w.+\-/][+(0-9])(?:"
        # international, '+' prefix
        r"(?P<intl>(?<=\+)[1-9]\d{0,2}"
        r"(?:[ .\-]?\(0\))?+(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,6})){1,7}+)"
        # international, '00' prefix
        r"|(?P<intl00>(?<=0)0[1-9]\d{0,2}"
        r"(?:[ .\-]?\(0\))?+(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,6})){1,7}+)"
        # North American: 1-AAA-EEE-NNNN, (AAA) EEE-NNNN, AAA-EEE-NNNN
        r"|(?P<nanp1>(?<=1)[ .\-](?:\([2-9]\d\d\)[ ]?|[2-9]\d\d[ .\-])\d{3}[ .\-]\d{4})"
        r"|(?P<nanpp>(?<=\()[2-9]\d\d\)[ ]?\d{3}[ .\-]\d{4})"
        r"|(?P<nanp>(?<=[2-9])\d\d[ .\-]\d{3}[ .\-]\d{4})"
        # national with trunk prefix 0: (0AA) NNN..., 0AA NNN...
        r"|(?P<natlp>(?<=\()0\d{1,4}\)[ ]?\d{2,8}(?:[ \-]\d{2,4}){0,3}+)"
        r"|(?P<natl>(?<=0)\d{1,4}[ \-]\d{2,8}(?:[ \-]\d{2,4}){0,3}+)"
        r")(?![\w]|[.\-/]\d)"  # not followed by more of a number/id
    )

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        text = m.group()
        kind = m.lastgroup
        if kind == "intl" or kind == "intl00":
            body = text.replace("(0)", "")
            if kind == "intl00":
                body = body[2:]
                if not any(c in body for c in " .-"):
                    return None
            n = len(_NON_DIGIT.sub("", body))
            return m.span() if 8 <= n <= 15 else None
        if kind == "natl" or kind == "natlp":
            n = len(_NON_DIGIT.sub("", text))
            return m.span() if 10 <= n <= 12 else None
        return m.span()  # NANP: shape alone is specific enough


class UsSsnDetector(RegexDetector):
    """US Social Security Numbers written ``AAA-GG-SSSS``.

    Rejected by :func:`~pipeline.privacy.checksums.ssn_valid`: area 000, 666 or 900–999,
    group 00, serial 0000. Undashed 9-digit runs are not matched (too many false hits).
    """

    name = "US_SSN"
    pattern = re.compile(r"(?<![\w\-.])(\d{3})-(\d{2})-(\d{4})(?![\w]|[\-.]\d)")
    anchor = re.compile(r"-\d\d-\d{4}")
    back_chars = _DIGITS
    max_back = 3

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        return m.span() if ssn_valid(m.group(1), m.group(2), m.group(3)) else None


class CreditCardDetector(RegexDetector):
    """Payment card numbers (PAN): 13–19 digits that pass the Luhn check.

    Accepted shapes: one contiguous run, groups of four separated by one consistent space
    or dash (``4111 1111 1111 1111``, 19-digit ``4-4-4-4-3``, 13-digit ``4-4-4-1``), and
    the Amex/Diners ``4-6-5`` / ``4-6-4`` layout. The first digit must be 2–6 (the card
    industries: Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay/Maestro 6),
    which also keeps epoch-millisecond timestamps (``17…``) out. Numbers failing Luhn are
    not reported: a random digit string passes only one time in ten.
    """

    name = "CREDIT_CARD"
    shadow_rejects = True  # a Luhn-failing 16-digit number is not a phone number either
    # First digit consumed before the look-behind: see PhoneDetector on why.
    pattern = re.compile(
        r"[2-6](?<![\w\-.][2-6])(?:"
        r"\d{12,18}+"
        r"|\d{3}(?P<sep>[ \-])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,4}(?:(?P=sep)\d{1,3})?+"
        r"|(?<=3)\d{3}(?P<sep2>[ \-])\d{6}(?P=sep2)\d{4,5}"
        r")(?![\w]|[\-.]\d)"
    )

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        digits = _NON_DIGIT.sub("", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return m.span()
        return None


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


class IPv4Detector(RegexDetector):
    """Dotted-quad IPv4 addresses with valid octets 0–255 and no leading zeros.

    ``999.1.1.1`` and ``256.0.0.1`` are rejected; so are pieces of longer dotted numbers
    (``1.2.3.4.5``) and tokens glued to letters (``v1.2.3.4``).
    """

    name = "IPV4"
    pattern = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
    anchor = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
    back_chars = _DIGITS
    max_back = 3


class IPv6Detector(RegexDetector):
    """IPv6 addresses, confirmed by :class:`ipaddress.IPv6Address`.

    The regex proposes runs of hex groups with at least two colons (optionally ending in
    an embedded IPv4 like ``::ffff:192.0.2.1``); :mod:`ipaddress` then decides. Times
    (``10:23:45``) and MAC addresses (``00:1A:2B:3C:4D:5E``) fail that check. A bare
    ``::`` (no hex digit) is not reported.
    """

    name = "IPV6"
    pattern = re.compile(
        r"(?<![\w:.])"
        r"(?:[0-9A-Fa-f]{1,4}|(?=::))"
        r"(?::[0-9A-Fa-f]{0,4}){2,7}+"
        r"(?:(?:\.\d{1,3}){3})?+"
        r"(?![\w:]|\.\d)"
    )
    # Every IPv6 address has '::' or eight groups (so ':x:y:'); times like 10:23:45 do not.
    anchor = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
    back_chars = _HEX_COLON
    max_back = 45

    def might_match(self, text: str) -> bool:
        return ":" in text

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        cand = m.group()
        if cand.count(":") < 2 or not any(c not in ":." for c in cand):
            return None
        try:
            ipaddress.IPv6Address(cand)
        except ValueError:
            return None
        return m.span()


class IbanDetector(RegexDetector):
    """International Bank Account Numbers, compact or printed in groups of four.

    Shape: two upper-case letters (country), two check digits, then 11–30 letters/digits.
    Accepted only when the ISO 7064 mod-97 check passes (see
    :func:`~pipeline.privacy.checksums.iban_valid`) and, for registered countries, the
    length matches the country's IBAN length. A candidate that ran on into a following
    upper-case word (``BE68 5390 0754 7034 DATA``) is trimmed back to the country length
    when the cut falls on a group boundary.
    """

    name = "IBAN"
    shadow_rejects = True  # the digit groups of a bad IBAN are not phones or cards
    pattern = re.compile(
        r"[A-Z](?<![\w][A-Z])[A-Z]\d{2}"  # first letter, then look-behind: see PhoneDetector
        r"(?:[ ]?[A-Z0-9]{4}){2,8}+"
        r"(?:[ ]?[A-Z0-9]{1,3})?+"
        r"(?![\w])"
    )

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        raw = m.group()
        compact = raw.replace(" ", "")
        expected = IBAN_LENGTHS.get(raw[:2])
        start, end = m.span()
        if expected is not None and len(compact) > expected:
            # Walk the raw text to the position after `expected` non-space characters.
            seen = 0
            cut = 0
            for i, ch in enumerate(raw):
                if ch != " ":
                    seen += 1
                    if seen == expected:
                        cut = i + 1
                        break
            if raw[cut] != " ":  # would split a group: not an IBAN followed by a word
                return None
            compact = compact[:expected]
            end = start + cut
        return (start, end) if iban_valid(compact) else None


class CustomRegexDetector(RegexDetector):
    """A detector from configuration: ``{name: "EMPLOYEE_ID", pattern: "EMP-\\\\d{6}"}``.

    The pattern is used as written (Python :mod:`re` syntax); empty matches are ignored.
    """

    def __init__(self, name: str, pattern: str, flags: int = 0):
        if not name or not isinstance(name, str):
            raise ValueError("custom PII rule needs a non-empty 'name'")
        try:
            compiled = re.compile(pattern, flags)
        except (re.error, TypeError) as exc:
            raise ValueError(f"custom PII rule {name!r}: invalid regex {pattern!r}: {exc}") from exc
        self.name = name
        self.pattern = compiled

    def might_match(self, text: str) -> bool:
        return True

    def accept(self, m: re.Match[str]) -> tuple[int, int] | None:
        return None if m.start() == m.end() else m.span()


# Built-in detectors by config name, in the order they are listed by default.
BUILTIN_DETECTORS: dict[str, type[RegexDetector]] = {
    "email": EmailDetector,
    "phone": PhoneDetector,
    "us_ssn": UsSsnDetector,
    "credit_card": CreditCardDetector,
    "ipv4": IPv4Detector,
    "ipv6": IPv6Detector,
    "iban": IbanDetector,
}

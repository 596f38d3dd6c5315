"""Check-digit rules used to confirm regex candidates.

A regex can only say "this looks like a card number / IBAN / SSN". The check digits
built into those identifiers let us reject most look-alikes (order numbers, trace ids,
typos) at almost no cost, which is what keeps precision high on log text.
"""

from __future__ import annotations

__all__ = ["IBAN_LENGTHS", "iban_valid", "luhn_valid", "ssn_valid"]


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check used by payment card numbers (ISO/IEC 7812).

    Walk the digits from the right; double every second digit (the check digit itself
    is not doubled) and, when doubling gives a two-digit number, subtract 9 (the same
    as adding its two digits). The number is valid when the total is a multiple of 10.

    ``digits`` must contain only ASCII digits.
    """
    total = 0
    # Precomputed "double then sum the digits" for 0..9 avoids a branch per digit.
    doubled = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += doubled[d] if i % 2 else d
    return total % 10 == 0


# Total IBAN length per country (ISO 13616 registry). Knowing the length lets the
# detector trim a candidate that swallowed a following group (e.g. "... 00 1234") and
# rejects strings whose length cannot be an IBAN of that country at all.
# fmt: off
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# fmt: on


def iban_valid(iban: str) -> bool:
    """ISO 13616 / ISO 7064 mod-97-10 check of a compact (no spaces) upper-case IBAN.

    Rule: move the first four characters (country code + two check digits) to the end,
    replace every letter by two digits (A=10, B=11, ..., Z=35), read the result as one
    integer; the IBAN is valid when that integer mod 97 equals 1.

    For countries in :data:`IBAN_LENGTHS` the length must match as well.
    """
    if not 15 <= len(iban) <= 34 or not iban.isascii() or not iban.isalnum():
        return False
    country = iban[:2]
    if not country.isalpha() or not iban[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(country)
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    # int(ch, 36) maps '0'-'9' to 0-9 and 'A'-'Z' to 10-35: exactly the IBAN letter code.
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US Social Security Number structure rules (SSA, post-2011 randomisation).

    Never issued: area 000, area 666, areas 900-999 (reserved, used for ITINs),
    group 00 and serial 0000.
    """
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"

"""Built-in detectors: true positives, tricky negatives, check-digit rules."""

from __future__ import annotations

import pytest

from pipeline.privacy import (
    CreditCardDetector,
    EmailDetector,
    IbanDetector,
    IPv4Detector,
    IPv6Detector,
    PhoneDetector,
    Scrubber,
    UsSsnDetector,
    iban_valid,
    luhn_valid,
    ssn_valid,
)


def spans(detector, text):
    return [text[f.start : f.end] for f in detector.finditer(text)]


def only(detector, value, before="value: ", after=" end"):
    """The detector finds exactly ``value`` when it is embedded in a sentence."""
    text = f"{before}{value}{after}"
    assert spans(detector, text) == [value], text


def none(detector, value):
    text = f"value: {value} end"
    assert spans(detector, text) == [], text


# ------------------------------------------------------------------ e-mail


@pytest.mark.parametrize(
    "value",
    [
        "jane.doe@example.com",
        "ops+alerts@mail.example.co.uk",
        "a_b-c%d@sub-domain.example.org",
        "x1@example.io",
        "UPPER.Case@Example.COM",
    ],
)
def test_email_positive(value):
    only(EmailDetector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "@channel",
        "user@localhost",
        "a@b",
        "name at example dot com",
        "foo@.example.com",
        "me@example.c",
        "@example.com",
    ],
)
def test_email_negative(value):
    none(EmailDetector(), value)


def test_email_sentence_punctuation():
    text = "write to <jane@example.com>, or (bob@example.org)."
    assert spans(EmailDetector(), text) == ["jane@example.com", "bob@example.org"]


# ------------------------------------------------------------------ phone


@pytest.mark.parametrize(
    "value",
    [
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "+1-202-555-0143",
        "0049 30 1234567",
        "+1 (202) 555-0143",
        "555.123.4567",
        "1-202-555-0143",
        "+49 (0)30 1234567",
        "+14155552671",
        "020 7946 0958",
        "030 1234567",
        "+33 1 23 45 67 89",
        "01 23 45 67 89",
        "(020) 7946 0958",
        "+61 2 5550 1234",
    ],
)
def test_phone_positive(value):
    only(PhoneDetector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15",
        "2024-01-15T10:23:45.123Z",
        "2024-01-15 10:23:45,123",
        "1.2.3",
        "10.0.19041.1",
        "ORD-2024-000123",
        "INV-00012345",
        "42",
        "12345",
        "0.8423",
        "3.14159",
        "1705312345678",
        "192.168.1.20",
        "123-45-6789",
        "4111 1111 1111 1111",
        "10:23:45",
        "0012345678",
        "+5.2%",
        "05-01-2024",
        "15/01/2024",
        "100-200-3000",
        "id 12345-6789",
        "+1.5",
        "v2.10.3",
        "a1-555-123-4567",
        "555-123-4567-89",
        "1234 5678",
    ],
)
def test_phone_negative(value):
    none(PhoneDetector(), value)


# ------------------------------------------------------------------ SSN


@pytest.mark.parametrize("value", ["123-45-6789", "001-01-0001", "665-99-9999", "899-12-3456"])
def test_ssn_positive(value):
    only(UsSsnDetector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-99-9999",
        "123-00-4567",
        "123-45-0000",
        "123456789",
        "123-45-67890",
        "1123-45-6789",
        "ID-123-45-6789",
        "123 45 6789",
    ],
)
def test_ssn_negative(value):
    none(UsSsnDetector(), value)


def test_ssn_rules():
    assert ssn_valid("123", "45", "6789")
    assert not ssn_valid("666", "45", "6789")
    assert not ssn_valid("950", "45", "6789")


# ------------------------------------------------------------------ payment cards


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "4222222222222",
        "2223003122003222",
        "30569309025904",
        "4111 1111 1111 1111 003",
    ],
)
def test_card_positive(value):
    only(CreditCardDetector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111112",  # fails Luhn
        "4111 1111 1111 1112",
        "5500-0000-0000-0005",
        "378282246310006",
        "1705312345678",  # epoch milliseconds: first digit 1
        "4111 1111-1111 1111",  # mixed separators
        "41111111111111111111",  # 20 digits
        "411111111111",  # 12 digits
        "ORD-4111111111111111",
        "0.4111111111111111",
    ],
)
def test_card_negative(value):
    none(CreditCardDetector(), value)


def test_luhn():
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


# ------------------------------------------------------------------ IPv4 / IPv6


@pytest.mark.parametrize(
    "value", ["192.168.1.20", "10.0.0.1", "255.255.255.255", "0.0.0.0", "203.0.113.7"]
)
def test_ipv4_positive(value):
    only(IPv4Detector(), value)


def test_ipv4_with_port_and_brackets():
    text = "peer=10.1.2.3:8080 [198.51.100.9] 192.0.2.1/24"
    assert spans(IPv4Detector(), text) == ["10.1.2.3", "198.51.100.9", "192.0.2.1"]


@pytest.mark.parametrize(
    "value",
    [
        "999.1.1.1",
        "256.0.0.1",
        "1.2.3.256",
        "1.2.3.4.5",
        "v1.2.3.4",
        "01.02.03.04",
        "1.2.3",
        "10.0.0.1000",
    ],
)
def test_ipv4_negative(value):
    none(IPv4Detector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "2001:db8::8a2e:370:7334",
        "fe80::1",
        "::1",
        "::ffff:192.0.2.1",
        "2001:0DB8:85A3:0000:0000:8A2E:0370:7334",
        "2001:db8:0:0:1:0:0:1",
        "1::",
    ],
)
def test_ipv6_positive(value):
    only(IPv6Detector(), value)


def test_ipv6_in_url():
    text = "GET http://[2001:db8::1]:8443/score"
    assert spans(IPv6Detector(), text) == ["2001:db8::1"]


@pytest.mark.parametrize(
    "value",
    [
        "10:23:45",
        "10:23:45.123",
        "00:1A:2B:3C:4D:5E",
        "std::vector",
        "::",
        "a::b::c",
        "2001:db8:::1",
        "12345::1",
        "1:2:3:4:5:6:7:8:9",
        "ratio 1:2:3",
    ],
)
def test_ipv6_negative(value):
    none(IPv6Detector(), value)


# ------------------------------------------------------------------ IBAN


@pytest.mark.parametrize(
    "value",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
        "BE68 5390 0754 7034",
        "NO93 8601 1117 947",
        "CH93 0076 2011 6238 5295 7",
    ],
)
def test_iban_positive(value):
    only(IbanDetector(), value)


@pytest.mark.parametrize(
    "value",
    [
        "DE88 3704 0044 0532 0130 00",  # check digits wrong
        "DE89 3704 0044 0532 0130 01",  # body changed
        "GB82WEST12345698765433",
        "DE89 3704 0044 0532 0130",  # too short for DE
        "XX00 1234 5678 9012 34",
        "de89 3704 0044 0532 0130 00",  # lower case
        "ADE89370400440532013000",
    ],
)
def test_iban_negative(value):
    none(IbanDetector(), value)


def test_iban_trims_trailing_word():
    text = "acct BE68 5390 0754 7034 DATA follows"
    assert spans(IbanDetector(), text) == ["BE68 5390 0754 7034"]


def test_iban_mod97():
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # wrong length for GB


def test_digits_of_bad_iban_are_not_other_entities():
    # The groups of a bad IBAN contain "0044 0532 0130 01", an international-looking
    # phone number; the IBAN shadow keeps it from being reported.
    s = Scrubber.from_config()
    text = "bad DE89 3704 0044 0532 0130 01 here"
    assert s.scan(text) == []
    assert s.scrub(text) == text

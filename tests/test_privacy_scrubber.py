"""Scrubber: replacement, overlap resolution, nested objects, file scanning."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import pytest

from pipeline.privacy import (
    CustomRegexDetector,
    EmailDetector,
    FileFinding,
    Finding,
    Scrubber,
    resolve_overlaps,
)

SECRET_EMAIL = "jane.doe@example.com"
SECRET_CARD = "4111 1111 1111 1111"
SECRET_PHONE = "+44 20 7946 0958"


@pytest.fixture(scope="module")
def scrubber():
    return Scrubber.from_config()


def test_scrub_replaces_each_entity(scrubber):
    text = (
        f"user {SECRET_EMAIL} paid with {SECRET_CARD}, phone {SECRET_PHONE}, "
        "ssn 123-45-6789 from 10.0.0.1 / fe80::1, iban GB82 WEST 1234 5698 7654 32"
    )
    assert scrubber.scrub(text) == (
        "user [EMAIL] paid with [CREDIT_CARD], phone [PHONE], ssn [US_SSN] from [IPV4] / "
        "[IPV6], iban [IBAN]"
    )


def test_scrub_is_identity_without_pii(scrubber):
    text = "2024-01-15T10:23:45.123Z INFO epoch 3 loss=0.8423 order ORD-2024-000123 v1.2.3"
    assert scrubber.scrub(text) == text
    assert scrubber.scan(text) == []
    assert scrubber.scrub("") == ""


def test_scrub_is_idempotent(scrubber):
    once = scrubber.scrub(f"{SECRET_EMAIL} {SECRET_PHONE}")
    assert scrubber.scrub(once) == once


def test_scan_returns_positions_only(scrubber):
    text = f"mail {SECRET_EMAIL}"
    assert scrubber.scan(text) == [Finding("EMAIL", 5, 5 + len(SECRET_EMAIL))]
    assert SECRET_EMAIL not in repr(scrubber.scan(text))


def test_overlaps_earliest_then_longest():
    a = CustomRegexDetector("LONG", r"abc def")
    b = CustomRegexDetector("SHORT", r"abc")
    c = CustomRegexDetector("LATE", r"def ghi")
    s = Scrubber([b, a, c])
    # LONG and SHORT start together: the longer wins; LATE overlaps LONG and is dropped.
    assert s.scrub("abc def ghi") == "[LONG] ghi"


def test_overlaps_tie_goes_to_first_listed_detector():
    a = CustomRegexDetector("FIRST", r"\d{4}")
    b = CustomRegexDetector("SECOND", r"\d{4}")
    assert Scrubber([a, b]).scrub("pin 1234") == "pin [FIRST]"
    assert Scrubber([b, a]).scrub("pin 1234") == "pin [SECOND]"


def test_resolve_overlaps_is_order_independent():
    fs = [Finding("B", 0, 3), Finding("A", 0, 5), Finding("C", 4, 8), Finding("D", 8, 9)]
    assert (
        resolve_overlaps(fs)
        == resolve_overlaps(list(reversed(fs)))
        == [Finding("A", 0, 5), Finding("D", 8, 9)]
    )


def test_custom_rule_beats_shadow_with_same_span():
    # A Luhn-failing 16-digit number is a card "shadow"; a custom rule that matches exactly
    # that text must still be reported.
    s = Scrubber.from_config({"custom": [{"name": "ACCOUNT", "pattern": r"4111111111111112"}]})
    assert s.scrub("acct 4111111111111112") == "acct [ACCOUNT]"


def test_scrub_obj_nested(scrubber):
    Pair = namedtuple("Pair", "left right")
    obj = {
        "owner": SECRET_EMAIL,
        f"contact:{SECRET_EMAIL}": 1,
        "nested": [{"phone": SECRET_PHONE}, (SECRET_CARD, 3.5, None)],
        "od": OrderedDict(ip="10.1.2.3"),
        "pair": Pair("192.0.2.1", "x"),
        "tags": {"fe80::1"},
        7: "n/a",
        "flag": True,
    }
    out = scrubber.scrub_obj(obj)
    assert out == {
        "owner": "[EMAIL]",
        "contact:[EMAIL]": 1,
        "nested": [{"phone": "[PHONE]"}, ("[CREDIT_CARD]", 3.5, None)],
        "od": OrderedDict(ip="[IPV4]"),
        "pair": Pair("[IPV4]", "x"),
        "tags": {"[IPV6]"},
        7: "n/a",
        "flag": True,
    }
    assert isinstance(out["od"], OrderedDict) and isinstance(out["pair"], Pair)
    assert obj["owner"] == SECRET_EMAIL  # input untouched


def test_iter_scrub_lines_matches_whole_text(scrubber):
    lines = [f"line {i} {SECRET_EMAIL} {SECRET_PHONE}\n" for i in range(500)]
    blocks = list(scrubber.iter_scrub_lines(lines, block_chars=1000))
    assert len(blocks) > 1
    assert "".join(blocks) == scrubber.scrub("".join(lines))


def test_scan_file_reports_lines_and_columns_never_values(tmp_path, scrubber):
    p = tmp_path / "app.log"
    p.write_text(
        "2024-01-15 INFO start\n"
        f"user {SECRET_EMAIL} logged in\n"
        "\n"
        f"card={SECRET_CARD};phone={SECRET_PHONE}\n"
        "é unicode line 10.0.0.1\n",
        encoding="utf-8",
    )
    findings = scrubber.scan_file(p)
    assert not findings.skipped
    assert findings == [
        FileFinding(str(p), "EMAIL", 2, 6),
        FileFinding(str(p), "CREDIT_CARD", 4, 6),
        FileFinding(str(p), "PHONE", 4, 32),
        FileFinding(str(p), "IPV4", 5, 16),
    ]
    dump = str(findings) + repr(findings) + "".join(str(f) for f in findings)
    for secret in (SECRET_EMAIL, SECRET_CARD, SECRET_PHONE, "10.0.0.1"):
        assert secret not in dump


def test_scan_file_across_block_boundaries(tmp_path, monkeypatch, scrubber):
    import pipeline.privacy.scrubber as mod

    monkeypatch.setattr(mod, "_BLOCK_BYTES", 64)
    monkeypatch.setattr(mod, "_SNIFF_BYTES", 16)
    lines = [f"row {i:03d} contact {SECRET_EMAIL}\n" for i in range(40)]
    p = tmp_path / "many.log"
    p.write_text("".join(lines) + "no newline at end 10.0.0.9")
    findings = scrubber.scan_file(p)
    assert [(f.line, f.column) for f in findings[:-1]] == [(i + 1, 17) for i in range(40)]
    assert (findings[-1].entity, findings[-1].line, findings[-1].column) == ("IPV4", 41, 19)


def test_scan_file_skips_binary(tmp_path, scrubber):
    p = tmp_path / "model.bin"
    p.write_bytes(b"\x00\x01" + SECRET_EMAIL.encode() + b"\x00")
    result = scrubber.scan_file(p)
    assert result == [] and result.skipped and result.skipped_reason == "binary"
    assert SECRET_EMAIL not in repr(result)


def test_scan_file_invalid_utf8_still_scanned(tmp_path, scrubber):
    p = tmp_path / "latin1.txt"
    p.write_bytes(b"caf\xe9 " + SECRET_EMAIL.encode() + b"\n")
    assert [f.entity for f in scrubber.scan_file(p)] == ["EMAIL"]


def test_scan_paths_walks_directories(tmp_path, scrubber):
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "x.txt").write_text(f"{SECRET_EMAIL}\n")
    (tmp_path / "a" / "y.bin").write_bytes(b"\x00\x00")
    (tmp_path / ".git" / "z.txt").write_text(f"{SECRET_EMAIL}\n")
    (tmp_path / "b.txt").write_text("nothing here\n")
    report = scrubber.scan_paths([tmp_path])
    assert report.counts() == {"EMAIL": 1}
    assert report.files_scanned == 2
    assert list(report.skipped.values()) == ["binary"]
    assert SECRET_EMAIL not in repr(report)


def test_scrubber_needs_detectors():
    with pytest.raises(ValueError):
        Scrubber([])


def test_plain_duck_typed_detector():
    class Upper:
        name = "SHOUT"

        def finditer(self, text):
            i = text.find("HELLO")
            if i >= 0:
                yield Finding(self.name, i, i + 5)

    s = Scrubber([Upper(), EmailDetector()])
    assert s.scrub("HELLO a@example.com") == "[SHOUT] [EMAIL]"

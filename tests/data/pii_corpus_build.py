"""Build ``pii_corpus.jsonl``: a labelled, fully synthetic PII corpus.

Run from the repository root (output is deterministic for the fixed seed)::

    .venv/bin/python tests/data/pii_corpus_build.py

Labels come from construction, not from any detector: every ``{EMAIL}``-style slot in a
template is filled with a value generated to be valid (Luhn / mod-97 check digits
computed, SSN areas chosen from the issued ranges, ...) and its offsets recorded.
``{NEG_*}`` slots are filled with look-alikes built to be invalid and get no label.
Names and user names come from Faker (seeded); domains are reserved example domains,
phone numbers use fictional ranges (555-01xx, Ofcom's 020 7946 0xxx drama range),
IPs come from the documentation ranges where possible. No real person's data.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import sys
from pathlib import Path

from faker import Faker

SEED = 20240115
rng = random.Random(SEED)
fake = Faker("en_US")
fake.seed_instance(SEED)

OUT = Path(__file__).with_name("pii_corpus.jsonl")

# ---------------------------------------------------------------- check digits


def luhn_check_digit(partial: str) -> str:
    """Digit that makes ``partial + digit`` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions get doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 7064 mod 97-10: 98 - (BBAN + country + '00' as digits) mod 97."""
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


# ---------------------------------------------------------------- positives

DOMAINS = [
    "example.com",
    "example.org",
    "example.net",
    "mail.example.co.uk",
    "corp.example.de",
    "test.example",
]


def gen_email() -> str:
    user = fake.user_name()
    style = rng.randrange(4)
    if style == 0:
        local = f"{fake.first_name()}.{fake.last_name()}".lower()
    elif style == 1:
        local = f"{user}+{rng.choice(['ml', 'alerts', 'x1'])}"
    elif style == 2:
        local = f"{user}{rng.randrange(10, 99)}"
    else:
        local = user.replace("_", "-") if "_" in user else f"{user}_{rng.randrange(9)}"
    return f"{local}@{rng.choice(DOMAINS)}"


def gen_phone() -> str:
    n4 = f"{rng.randrange(100):02d}"
    area = rng.choice(["202", "212", "415", "617", "312", "503"])
    forms = [
        f"({area}) 555-01{n4}",
        f"{area}-555-01{n4}",
        f"{area}.555.01{n4}",
        f"+1-{area}-555-01{n4}",
        f"+1 ({area}) 555-01{n4}",
        f"1-{area}-555-01{n4}",
        f"+44 20 7946 0{rng.randrange(1000):03d}",
        f"020 7946 0{rng.randrange(1000):03d}",
        f"+44 161 496 0{rng.randrange(1000):03d}",
        f"+49 30 {rng.randrange(1000000, 9999999)}",
        f"0049 30 {rng.randrange(1000000, 9999999)}",
        f"+49 (0)30 {rng.randrange(1000000, 9999999)}",
        f"030 {rng.randrange(1000000, 9999999)}",
        "+33 1 " + " ".join(f"{rng.randrange(100):02d}" for _ in range(4)),
        "01 " + " ".join(f"{rng.randrange(100):02d}" for _ in range(4)),
        f"+1{area}55501{n4}",
        f"+61 2 5550 {rng.randrange(1000, 9999)}",
    ]
    return rng.choice(forms)


def gen_ssn() -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            break
    return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


CARD_PREFIXES = [
    ("4", 16),
    ("4", 13),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("4", 19),
    ("36", 14),
]


def _card_digits(valid: bool) -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + rng.randrange(1, 10)) % 10)
    return body + check


def _format_card(d: str) -> str:
    if len(d) == 15 and d[0] == "3" and rng.random() < 0.6:
        sep = rng.choice(" -")
        return f"{d[:4]}{sep}{d[4:10]}{sep}{d[10:]}"
    if len(d) in (16, 19) and rng.random() < 0.7:
        sep = rng.choice(" -")
        return sep.join(d[i : i + 4] for i in range(0, len(d), 4))
    return d


def gen_card() -> str:
    return _format_card(_card_digits(True))


def gen_ipv4() -> str:
    choice = rng.randrange(5)
    if choice == 0:
        return f"192.0.2.{rng.randrange(1, 255)}"
    if choice == 1:
        return f"198.51.100.{rng.randrange(256)}"
    if choice == 2:
        return f"203.0.113.{rng.randrange(256)}"
    if choice == 3:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(256)}"


def gen_ipv6() -> str:
    choice = rng.randrange(5)
    if choice == 0:  # documentation prefix, compressed by ipaddress
        addr = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64))
        return str(addr)
    if choice == 1:
        return f"fe80::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}"
    if choice == 2:
        return f"::ffff:192.0.2.{rng.randrange(1, 255)}"
    if choice == 3:  # full, uncompressed, upper case
        groups = ["2001", "0DB8"] + [f"{rng.getrandbits(16):04X}" for _ in range(6)]
        return ":".join(groups)
    return f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(8):x}"


IBAN_SPECS = {  # country: (BBAN builder)
    "DE": lambda: "".join(str(rng.randrange(10)) for _ in range(18)),
    "GB": lambda: (
        rng.choice(["NWBK", "WEST", "BARC"]) + "".join(str(rng.randrange(10)) for _ in range(14))
    ),
    "FR": lambda: "".join(str(rng.randrange(10)) for _ in range(23)),
    "NL": lambda: (
        rng.choice(["ABNA", "RABO", "INGB"]) + "".join(str(rng.randrange(10)) for _ in range(10))
    ),
    "ES": lambda: "".join(str(rng.randrange(10)) for _ in range(20)),
    "BE": lambda: "".join(str(rng.randrange(10)) for _ in range(12)),
    "CH": lambda: "".join(str(rng.randrange(10)) for _ in range(17)),
    "NO": lambda: "".join(str(rng.randrange(10)) for _ in range(11)),
    "IT": lambda: "X" + "".join(str(rng.randrange(10)) for _ in range(22)),
}


def _iban(valid: bool) -> str:
    country = rng.choice(list(IBAN_SPECS))
    bban = IBAN_SPECS[country]()
    check = iban_check_digits(country, bban)
    if not valid:
        check = f"{(int(check) + rng.randrange(1, 90)) % 97 + 2:02d}"
        if check == iban_check_digits(country, bban):
            check = f"{(int(check) + 1) % 97 + 2:02d}"
    compact = country + check + bban
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def gen_iban() -> str:
    return _iban(True)


# ---------------------------------------------------------------- negatives


def neg_card() -> str:
    return _format_card(_card_digits(False))


def neg_iban() -> str:
    return _iban(False)


def neg_ip() -> str:
    return rng.choice(
        [
            "999.1.1.1",
            "256.10.0.1",
            f"300.{rng.randrange(256)}.1.1",
            "1.2.3.4.5",
            "10.0.0.256",
            f"192.168.{rng.randrange(256)}.999",
            "v1.2.3.4",
            "01.02.03.004",
        ]
    )


def neg_ssn() -> str:
    g, s = rng.randrange(1, 100), rng.randrange(1, 10000)
    return rng.choice(
        [
            f"000-{g:02d}-{s:04d}",
            f"666-{g:02d}-{s:04d}",
            f"9{rng.randrange(100):02d}-{g:02d}-{s:04d}",
            f"{rng.randrange(1, 600):03d}-00-{s:04d}",
            f"{rng.randrange(1, 600):03d}-{g:02d}-0000",
        ]
    )


def neg_number() -> str:
    """Numbers that must not be taken for phones (or anything else)."""
    y, mo, d = rng.randrange(2015, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
    h, mi, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return rng.choice(
        [
            f"ORD-{y}-{rng.randrange(1000000):06d}",
            f"{y}-{mo:02d}-{d:02d}",
            f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{rng.randrange(1000):03d}Z",
            f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{rng.randrange(1000):03d}",
            f"{d:02d}/{mo:02d}/{y}",
            f"{rng.randrange(10)}.{rng.randrange(30)}.{rng.randrange(50)}",
            f"0.{rng.randrange(10000):04d}",
            f"{rng.randrange(1000)}",
            f"{rng.randrange(100000)}.{rng.randrange(100):02d}",
            f"{1_600_000_000_000 + rng.randrange(10**11)}",  # epoch ms
            f"INV-{rng.randrange(10**8):08d}",
            f"{h:02d}:{mi:02d}:{s:02d}",
            f"build {y}.{mo}.{d}.{rng.randrange(10000)}",
            f"{rng.randrange(10**6):06d}",
            f"{rng.randrange(1000, 10000)} {rng.randrange(1000, 10000)}",
            f"sha {rng.getrandbits(160):040x}",
            f"uuid {fake.uuid4()}",
            f"{rng.randrange(100)}:{rng.randrange(100)}:{rng.randrange(100)}",
            f"00:{rng.randrange(16, 255):02X}:{rng.randrange(16, 255):02X}:"
            f"{rng.randrange(16, 255):02X}:{rng.randrange(16, 255):02X}:"
            f"{rng.randrange(16, 255):02X}",
            f"+{rng.randrange(1, 40)}.{rng.randrange(10)}%",
            f"port {rng.randrange(1024, 65535)}",
            f"{rng.randrange(100, 999)} {rng.randrange(10, 99)} {rng.randrange(1000, 9999)}",
        ]
    )


GEN = {
    "EMAIL": gen_email,
    "PHONE": gen_phone,
    "US_SSN": gen_ssn,
    "CREDIT_CARD": gen_card,
    "IPV4": gen_ipv4,
    "IPV6": gen_ipv6,
    "IBAN": gen_iban,
    "NEG_CARD": neg_card,
    "NEG_IBAN": neg_iban,
    "NEG_IP": neg_ip,
    "NEG_SSN": neg_ssn,
    "NEG_NUM": neg_number,
}

# ---------------------------------------------------------------- templates

TEMPLATES = [
    "{TS} INFO auth: login ok user={EMAIL} src={IPV4}",
    "{TS} WARN auth: failed login for {EMAIL} from {IPV6}",
    "{TS} INFO crm: callback requested by {NAME}, phone {PHONE}",
    "{TS} DEBUG billing: charging card {CREDIT_CARD} amount={NEG_NUM}",
    "{TS} INFO payroll: transfer to {IBAN} ref {NEG_NUM}",
    "{TS} ERROR kyc: ssn {US_SSN} did not match record for {NAME}",
    "Customer {NAME} <{EMAIL}> called from {PHONE} about order {NEG_NUM}",
    "please wire the refund to {IBAN} and confirm to {EMAIL}",
    '{TS} INFO http: {IPV4} - - "GET /api/v1/predict HTTP/1.1" 200 {NEG_NUM}',
    '{TS} INFO http: [{IPV6}]:8443 "POST /score HTTP/2" 201',
    "contact: {PHONE} / {EMAIL}",
    "SSN on file: {US_SSN}; card on file: {CREDIT_CARD}",
    "row {NEG_NUM}: email={EMAIL}, phone={PHONE}, ip={IPV4}",
    "{TS} WARN payments: card {NEG_CARD} rejected (checksum), retry with {CREDIT_CARD}",
    "{TS} WARN payments: IBAN {NEG_IBAN} rejected, bad check digits",
    "{TS} INFO net: peer {NEG_IP} ignored, invalid address",
    "{TS} INFO train: epoch {NEG_NUM} loss={NEG_NUM} acc={NEG_NUM}",
    "{TS} INFO registry: model v{NEG_NUM} promoted, run {NEG_NUM}",
    "order {NEG_NUM} shipped on {NEG_NUM}, tracking {NEG_NUM}",
    "{TS} DEBUG kyc: candidate id {NEG_SSN} is not a valid SSN",
    "{TS} INFO: nothing personal here, took {NEG_NUM} ms at {NEG_NUM}",
    "{NAME} moved from {IPV4} to {IPV6} at {NEG_NUM}",
    "fallback number {PHONE}, alt {PHONE}",
    "{TS} ERROR sync: account {IBAN} mismatch vs {NEG_IBAN}",
    "cards: {CREDIT_CARD}, {NEG_CARD}",
    "{TS} INFO dns: resolved host to {IPV4} and {IPV6}",
    "ticket {NEG_NUM}: {NAME} ({EMAIL}) reports ssn {US_SSN} shown in UI",
    "{TS} INFO metrics: p50={NEG_NUM} p99={NEG_NUM} n={NEG_NUM}",
]

SLOT = re.compile(r"\{([A-Z0-9_]+)\}")


def ts() -> str:
    return (
        f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} "
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d},"
        f"{rng.randrange(1000):03d}"
    )


def render(template: str) -> dict:
    text, ents, pos = [], [], 0
    last = 0
    for m in SLOT.finditer(template):
        lit = template[last : m.start()]
        text.append(lit)
        pos += len(lit)
        slot = m.group(1)
        if slot == "TS":
            val = ts()
        elif slot == "NAME":
            val = fake.name()
        else:
            val = GEN[slot]()
        text.append(val)
        if slot in GEN and not slot.startswith("NEG_"):
            ents.append({"type": slot, "start": pos, "end": pos + len(val)})
        pos += len(val)
        last = m.end()
    text.append(template[last:])
    return {"text": "".join(text), "entities": ents}


# Hand-written lines: the exact examples the detectors promise to handle or to ignore.
HAND = [
    (
        "Call +44 20 7946 0958 or (555) 123-4567 or 555-123-4567.",
        [("PHONE", "+44 20 7946 0958"), ("PHONE", "(555) 123-4567"), ("PHONE", "555-123-4567")],
    ),
    (
        "US office +1-202-555-0143, Berlin 0049 30 1234567",
        [("PHONE", "+1-202-555-0143"), ("PHONE", "0049 30 1234567")],
    ),
    ("released 2024-01-15 as version 1.2.3 for order ORD-2024-000123", []),
    ("auc=0.8423 f1=0.7712 n=42 seed=1234", []),
    (
        "card 4111 1111 1111 1111 ok, 4111 1111 1111 1112 fails Luhn",
        [("CREDIT_CARD", "4111 1111 1111 1111")],
    ),
    (
        "IBAN DE89 3704 0044 0532 0130 00 valid, DE88 3704 0044 0532 0130 00 invalid",
        [("IBAN", "DE89 3704 0044 0532 0130 00")],
    ),
    (
        "compact GB82WEST12345698765432 and GB82WEST12345698765433",
        [("IBAN", "GB82WEST12345698765432")],
    ),
    (
        "hosts 192.168.1.20, 999.1.1.1, 10.0.0.256 and 2001:db8::1",
        [("IPV4", "192.168.1.20"), ("IPV6", "2001:db8::1")],
    ),
    (
        "loopback ::1 and link-local fe80::1ff:fe23:4567:890a",
        [("IPV6", "::1"), ("IPV6", "fe80::1ff:fe23:4567:890a")],
    ),
    ("timestamp 2024-01-15T10:23:45.123Z mac 00:1A:2B:3C:4D:5E", []),
    (
        "ssn 123-45-6789 but never 000-12-3456, 666-12-3456, 912-12-3456, 123-00-4567",
        [("US_SSN", "123-45-6789")],
    ),
    ("std::vector<int> and a::b::c are C++ names, ratio 1:2:3", []),
    (
        "user jane.doe@example.com wrote to ops+alerts@mail.example.co.uk",
        [("EMAIL", "jane.doe@example.com"), ("EMAIL", "ops+alerts@mail.example.co.uk")],
    ),
    ("not emails: @channel, user@localhost, a@b, name at example dot com", []),
    ("epoch 1705312345678 and nanos 1705312345678901234", []),
    (
        "amex 3782 822463 10005 and 378282246310005",
        [("CREDIT_CARD", "3782 822463 10005"), ("CREDIT_CARD", "378282246310005")],
    ),
    ("range 10-20-30, score 99.5, id 12345-6789", []),
    ("version 10.0.19041.1 build 22621.2715", []),
    (
        "Paris +33 1 23 45 67 89, London 020 7946 0018",
        [("PHONE", "+33 1 23 45 67 89"), ("PHONE", "020 7946 0018")],
    ),
    (
        "E.164 +14155552671 and +49 (0)30 1234567",
        [("PHONE", "+14155552671"), ("PHONE", "+49 (0)30 1234567")],
    ),
]


def hand_rows() -> list[dict]:
    rows = []
    for text, ents in HAND:
        out, cursor = [], 0
        for typ, val in ents:
            start = text.index(val, cursor)
            out.append({"type": typ, "start": start, "end": start + len(val)})
            cursor = start + len(val)
        rows.append({"text": text, "entities": out})
    return rows


def main(n_generated: int = 220) -> int:
    rows = hand_rows()
    for i in range(n_generated):
        rows.append(render(TEMPLATES[i % len(TEMPLATES)]))
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for row in rows:
        for e in row["entities"]:
            counts[e["type"]] = counts.get(e["type"], 0) + 1
    print(f"wrote {len(rows)} lines to {OUT}: {dict(sorted(counts.items()))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

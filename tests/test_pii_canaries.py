"""PII canaries: synthetic personal data injected into the raw data and into log messages must
not appear in any output, report, log or (once registered) the MLflow store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN, copy_repo, run, stage

pytestmark = pytest.mark.slow
DVC = str(VENV_BIN / "dvc")
ROWS = 4000
SALT = "test-salt-not-a-secret"


def _canaries(n: int) -> list[dict[str, str]]:
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(20261128)
    out = []
    for i in range(n):
        out.append({
            "full_name": f"{fake.first_name()} Canary{i:05d} {fake.last_name()}",
            "email": f"canary.{i:05d}@{fake.domain_name()}",
            "phone": f"+1-202-555-{i % 10000:04d}",
            "customer_id": f"CUST-CANARY-{i:06d}",
            "card": fake.credit_card_number(card_type="visa16"),
            "iban": fake.iban(),
            "signup_date": fake.date_between("-5y", "-1y").isoformat(),
        })
    return out


def _write_dataset(repo: Path) -> list[dict[str, str]]:
    doc = yaml.safe_load((ROOT / "conf" / "data" / "adult.yaml").read_text())
    spec = doc["data"]
    names = list(spec["columns"])
    rows = []
    with (ROOT / "data" / "adult" / "adult.data").open() as fh:
        for rec in csv.reader(fh, skipinitialspace=True):
            if len(rec) == len(names) and "?" not in rec:
                rows.append(dict(zip(names, rec, strict=True)))
            if len(rows) == ROWS:
                break
    people = _canaries(ROWS)
    (repo / "data" / "pii").mkdir(parents=True)
    extra = ["full_name", "email", "phone", "customer_id", "notes", "signup_date"]
    with (repo / "data" / "pii" / "people.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names + extra)
        for r, p in zip(rows, people, strict=True):
            notes = (f"Called {p['email']} at {p['phone']}; paid with {p['card']}, "
                     f"refund to {p['iban']}. Ticket 2024-{len(p['email'])}.")
            w.writerow([r[c] for c in names] + [p["full_name"], p["email"], p["phone"],
                                                 p["customer_id"], notes, p["signup_date"]])
    spec["name"] = "adult_pii"
    spec["source"] = {"dir": "data/pii", "files": ["people.csv"], "format": "csv",
                      "header": True, "delimiter": ","}
    spec["columns"].update({
        "full_name": {"type": "string", "pii": "drop"},
        "email": {"type": "string", "pii": "drop"},
        "phone": {"type": "string", "pii": "drop"},
        "customer_id": {"type": "string", "pii": "hash"},
        "notes": {"type": "string", "description": "free text from a support system"},
        "signup_date": {"type": "date", "pii": "year"},
    })
    _save_dataset(repo, doc)
    return people


def _save_dataset(repo: Path, doc: dict) -> None:
    """conf/data/adult_pii.yaml: one file per dataset (README), its package line first."""
    (repo / "conf" / "data" / "adult_pii.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(doc, sort_keys=False))


def _needles(people: list[dict[str, str]]) -> set[str]:
    # Dates are checked in the outputs only (a lock file is full of ordinary dates).
    keys = ("full_name", "email", "phone", "customer_id", "card", "iban")
    return {p[k] for p in people for k in keys}


def _leaks(text: str, needles: set[str]) -> list[str]:
    return sorted(n for n in needles if n in text)[:5]


def test_no_canary_reaches_any_output_report_or_log(tmp_path, pulled_data):
    repo = copy_repo(tmp_path / "repo")
    people = _write_dataset(repo)
    needles = _needles(people)
    run([str(VENV_BIN / "python"), "-m", "pipeline.compose", "data=adult_pii", "metrics.n_boot=20"],
        repo)
    proc = run([DVC, "repro", "governance"], repo, GOVPIPE_PII_SALT=SALT)
    logs = proc.stdout + proc.stderr

    # A stage that fails on bad data quotes offending values in its error: they are scrubbed.
    bad = repo / "data" / "pii_bad"
    bad.mkdir()
    lines = (repo / "data" / "pii" / "people.csv").read_text().splitlines()
    head = lines[0].split(",")
    row = next(csv.reader([lines[1]]))
    row[head.index("workclass")] = people[0]["email"]
    (bad / "people.csv").write_text(lines[0] + "\n" + ",".join(
        f'"{v}"' for v in row) + "\n")
    failed = stage(repo, "ingest", "data=adult_pii",
                   "data.source.dir=data/pii_bad",
                   f"hydra.run.dir={tmp_path / 'bad-run'}", GOVPIPE_PII_SALT=SALT)
    assert failed.returncode == 2 and "[EMAIL]" in failed.stderr, failed.stderr
    logs += failed.stdout + failed.stderr + "".join(
        p.read_text() for p in (tmp_path / "bad-run").rglob("*.log"))
    assert not _leaks(logs, needles), "a canary reached a log"

    gov = json.loads((repo / "reports" / "governance.json").read_text())
    assert gov["privacy_scan"]["findings"] == 0, gov["privacy_scan"]["details"][:5]
    source = set(run(["git", "ls-files"], repo).stdout.split()) - {"params.yaml", "dvc.lock"}
    # DVC keeps a copy of the raw input in its cache, named by its md5: that is input, not output
    import hashlib

    raw_md5 = {hashlib.md5(p.read_bytes()).hexdigest() for p in (repo / "data").rglob("*")
               if p.is_file()}
    checked = 0
    for path in repo.rglob("*"):
        rel = path.relative_to(repo)
        if not path.is_file() or rel.parts[0] in ("data", ".git") or str(rel) in source:
            continue  # the raw input itself, git's objects, the project's own source
        if rel.parts[:2] == (".dvc", "cache") and rel.parts[-2] + rel.parts[-1] in raw_md5:
            continue
        if rel.parts[0] in ("artifacts", "reports", "metrics", "plots") or rel.parts[:2] == (
                ".dvc", "cache"):
            dates = {p["signup_date"] for p in people}
        else:
            dates = set()
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            text = "\n".join(df[c].astype(str).str.cat(sep="\n") for c in df.columns)
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        assert not _leaks(text, needles | dates), f"canary in {rel}"
        checked += 1
    assert checked > 20
    clean = pd.read_parquet(repo / "artifacts" / "ingest.parquet")
    assert {"full_name", "email", "phone"}.isdisjoint(clean.columns)
    assert clean["customer_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert clean["signup_date"].between(2015, 2030).all()
    assert clean["notes"].str.contains(r"\[EMAIL\]").all()


def test_personal_data_in_an_undeclared_column_fails_the_scan(tmp_path, pulled_data):
    """A dataset whose category values are e-mail addresses (nobody declared them PII) gets
    them into the ingest report; the governance scan must catch that and reject."""
    repo = copy_repo(tmp_path / "repo")
    people = _write_dataset(repo)
    doc = yaml.safe_load((repo / "conf" / "data" / "adult_pii.yaml").read_text())
    spec = doc["data"]
    emails = sorted({p["email"] for p in people[:3]})
    csv_path = repo / "data" / "pii" / "people.csv"
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(",")
    out = [lines[0] + ",contact"]
    for i, line in enumerate(lines[1:]):
        out.append(f"{line},{emails[i % len(emails)]}")
    csv_path.write_text("\n".join(out) + "\n")
    spec["columns"]["contact"] = {"type": "category", "categories": emails}
    _save_dataset(repo, doc)
    assert "contact" not in header
    run([str(VENV_BIN / "python"), "-m", "pipeline.compose", "data=adult_pii", "metrics.n_boot=20"],
        repo)
    proc = run([DVC, "repro", "governance"], repo, GOVPIPE_PII_SALT=SALT)
    gov_text = (repo / "reports" / "governance.json").read_text()
    gov = json.loads(gov_text)
    assert gov["verdict"] == "REJECTED"
    hits = [d for d in gov["privacy_scan"]["details"] if d["path"] == "reports/ingest.json"]
    assert hits and {h["entity"] for h in hits} == {"EMAIL"}
    assert any("privacy scan" in r for r in gov["reasons"])
    assert not _leaks(gov_text + proc.stdout + proc.stderr, set(emails))

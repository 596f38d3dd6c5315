"""A synthetic dataset with the traits of real public records that hold personal data (the
scaffold's test bed): Faker names, dates of birth, case-number-like ids, a repeated header, a
0/1 integer target, a free-text description, sex / race / age, and an outcome-like column that
leaks the target. Nothing here is real; the seed fixes every value."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HEADER = ["first", "last", "dob", "case_number", "sex", "race", "age", "priors_count",
          "juv_count", "charge_degree", "charge_desc", "c_jail_days", "c_jail_days",
          "employed", "decile_score", "two_year_recid"]
CHARGES = ["possession of a controlled substance", "driving with a suspended licence",
           "battery on a law enforcement officer", "petit theft from a retail store",
           "grand theft of a motor vehicle", "failure to appear in court as ordered"]
# Qualifiers make the description free text (more distinct values than a category holds).
WHERE = ["at night", "near a school", "second offence", "with a weapon", "in a vehicle",
         "on probation", "first offence", "while intoxicated", "at a residence", "downtown",
         "without injury", "with prior warning"]


def write(path: Path, rows: int = 2000, seed: int = 7) -> list[dict[str, str]]:
    """Write the CSV; return the personal values (canaries) that must never leave ingest."""
    from faker import Faker

    fake = Faker("en_US")
    Faker.seed(seed)
    rng = np.random.default_rng(seed)
    people = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            sex = "Male" if rng.random() < 0.6 else "Female"
            race = rng.choice(["African-American", "Caucasian", "Hispanic", "Other"],
                              p=[0.45, 0.35, 0.12, 0.08])
            age = int(rng.integers(18, 70))
            priors = int(rng.poisson(2.5))
            juv = int(rng.poisson(0.3))
            degree = "F" if rng.random() < 0.6 else "M"
            desc = (f"{CHARGES[int(rng.integers(len(CHARGES)))]} "
                    f"{WHERE[int(rng.integers(len(WHERE)))]}")
            jail = int(rng.integers(0, 60))
            employed = "yes" if rng.random() < 0.55 else "no"
            # A strong signal, so a plain model can pass the shared performance gates.
            logit = 2.5 * (priors - 2.5) + 3.0 * juv - 0.02 * (age - 40)
            logit += (1.5 if degree == "F" else -1.5) + (-3.0 if employed == "yes" else 3.0)
            logit += 2.0 if "weapon" in desc or "intoxicated" in desc else 0.0
            recid = int(rng.random() < 1 / (1 + np.exp(-logit)))
            decile = recid * 5 + int(rng.integers(1, 6))  # an outcome-like score: leaks
            first, last = fake.first_name(), fake.last_name()
            dob = fake.date_of_birth(minimum_age=age, maximum_age=age).isoformat()
            case = f"{rng.integers(10, 16)}{rng.integers(0, 10**6):06d}CF10A-{i:05d}"
            w.writerow([first, last, dob, case, sex, race, age, priors, juv, degree, desc,
                        jail, jail + int(rng.integers(0, 3)), employed, decile, recid])
            people.append({"first": first, "last": last, "dob": dob, "case_number": case})
    return people

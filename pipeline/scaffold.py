"""Draft a dataset's one config file from the data itself.

    python -m pipeline.scaffold data/NAME/FILE.csv --target COLUMN --favourable VALUE
                                [--name NAME] [--sensitive COLUMN ...] [--force]

Writes `conf/data/NAME.yaml`: every column with its inferred type, categories, range and
missing-value rule; PII candidates as `pii: drop` with the reason; sensitive-attribute
candidates; leakage warnings; a repeated header named explicitly; gates on the sensitive
attributes; card text to review. The draft validates as written and the pipeline runs on it
(`dvc exp run -S data=NAME`); lines marked REVIEW are the ones a person must read. Inference
rules: `pipeline.dataset.infer`. Values of a PII column never reach the draft or the console.

Exit 2, nothing written, for: a file that is missing, unreadable, empty or not under `data/`;
a target that is not a column, has more than two values or missing values; a favourable value
that never occurs; an existing output file (unless --force); no sensitive attribute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline.config.dataset import DatasetSpec
from pipeline.dataset import infer
from pipeline.dataset.read import looks_binary
from pipeline.privacy import Scrubber
from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError, DataError, PipelineError
from pipeline.runtime.runner import EXIT_USER_ERROR

SNIFF_BYTES = 65536
DELIMITERS = ",;\t|"


def _j(value: object) -> str:
    """A YAML flow value: JSON is valid YAML and quotes every string that needs it."""
    return json.dumps(value, ensure_ascii=False)


def _read(path: Path):
    """(text frame with missing as NaN, source settings, the header as written)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several unrelated types
            raise DataError(f"{path}: cannot read as parquet ({type(e).__name__})") from None
        header = [str(c) for c in df.columns]
        df = df.astype("str").where(df.notna(), None)
        return df, {"format": "parquet", "header": True}, header
    try:
        if looks_binary(path):  # the check ingest makes, so both refuse the same files
            raise DataError(f"{path}: not a text file (binary content); expected csv or parquet")
        with path.open(encoding="utf-8", newline="") as fh:
            head = fh.read(SNIFF_BYTES)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as UTF-8 text ({type(e).__name__})") from None
    try:
        dialect = csv.Sniffer().sniff(head.split("\n", 1)[0], delimiters=DELIMITERS)
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    spaced = bool(re.search(re.escape(delimiter) + r" \S", head.split("\n", 1)[0]))
    header = next(csv.reader([head.split("\n", 1)[0].rstrip("\r")], delimiter=delimiter,
                             skipinitialspace=spaced))
    names = _unique(header)
    try:
        df = pd.read_csv(path, sep=delimiter, header=0, names=names, dtype=str,
                         skipinitialspace=spaced, keep_default_na=False, na_values=[""],
                         engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as e:
        raise DataError(f"{path}: cannot parse as csv ({str(e).splitlines()[0][:120]})") from None
    if df.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    source = {"format": "csv", "header": True, "delimiter": delimiter}
    if spaced:
        source["skip_initial_space"] = True
    return df, source, header


def _unique(header: list[str]) -> list[str]:
    """The header with each repeat renamed NAME_2, NAME_3 … (never a name already present)."""
    out: list[str] = []
    for name in header:
        new, i = name, 1
        while new in out or (new != name and new in header):
            i += 1
            new = f"{name}_{i}"
        out.append(new)
    return out


def _check_target(df, target: str, favourable: str) -> None:
    if target not in df.columns:
        raise DataError(f"--target {target!r}: not a column of the file "
                        f"(columns: {', '.join(map(str, df.columns))})")
    values = df[target]
    if values.isna().any():
        raise DataError(f"--target {target!r}: {int(values.isna().sum())} row(s) have no "
                        "value; a target may not be missing (drop those rows first)")
    distinct = sorted(values.unique())
    if len(distinct) > 2:
        raise DataError(f"--target {target!r}: {len(distinct)} distinct values; govpipe "
                        "models a binary outcome (map the values to two first)")
    if favourable not in distinct:
        raise DataError(f"--favourable {favourable!r}: never occurs in {target!r} "
                        f"(values: {', '.join(map(repr, distinct))})")


def draft(path: Path, root: Path, target: str, favourable: str, name: str,
          sensitive_cols: list[str], max_categories: int) -> tuple[str, list[str]]:
    """(the YAML text, the summary lines to print)."""

    try:
        rel = path.resolve().relative_to((root / "data").resolve())
    except ValueError:
        raise DataError(f"{path}: put the file under data/ first (e.g. data/{name}/"
                        f"{path.name}): data/ is git-ignored and tracked by data.dvc") from None
    df, source, header = _read(path)
    _check_target(df, target, favourable)
    scrubber = Scrubber.from_config()
    ttype, labels, lo, hi = infer.target_values(df[target])
    y = (df[target] == favourable).to_numpy(dtype=int)
    cols, na_tokens = {}, set()
    for c in df.columns:
        if c == target:
            continue
        d, tokens = infer.infer_column(c, df[c], max_categories, scrubber)
        na_tokens |= tokens
        if d.pii is None and d.type != "string":
            d.leak = infer.leakage(c, df[c].where(~df[c].isin(tokens)), y)
        cols[c] = d
    for c in sensitive_cols:
        if c not in cols:
            raise DataError(f"--sensitive {c!r}: not a column of the file (or it is the target)")
    sens: dict[str, dict] = {}
    for c, d in cols.items():
        if d.pii is not None:
            continue
        attr = infer.sensitive_candidate(d) if not sensitive_cols else (
            c if c in sensitive_cols and d.type == "category" else
            "age_group" if c in sensitive_cols and d.type in ("int", "float") else None)
        if c in sensitive_cols and attr is None:
            raise DataError(f"--sensitive {c!r}: a sensitive attribute needs a category or "
                            f"numeric column; {c!r} is {d.type}")
        if attr is None:
            continue
        if d.missing:
            d.notes.append(f"a candidate sensitive attribute ({attr}) but {d.missing} value(s) "
                           "are missing, which a sensitive attribute may not be: not declared")
            continue
        d.sensitive = attr
        sens[attr] = ({"column": c, "bins": infer.AGE_BINS, "labels": infer.AGE_LABELS}
                      if attr == "age_group" else {"column": c})
    if not sens:
        raise ConfigError("no sensitive attribute found (by header: sex/gender, race/ethnicity, "
                          "age); name one or more with --sensitive COLUMN")
    if not [c for c in _features(cols) if cols[c].sensitive is None]:
        raise DataError("no column is left to be a feature (every other column is PII, "
                        "the target, a sensitive attribute, a possible leak, or neither a "
                        "type nor free text)")
    text = _render(path, rel, name, source, header, df, cols, na_tokens, target, ttype, labels,
                   lo, hi, favourable, sens)
    return text, _summary(name, cols, sens, target)


def _features(cols: dict) -> list[str]:
    return [c for c, d in cols.items() if d.pii is None and not d.leak and (
        d.type in ("int", "float", "bool", "category") or d.text)]


def _column_line(d) -> str:
    if d.pii is not None:
        return f"{_j(d.name)}: {{type: {d.type}, pii: drop}}   # PII: {d.pii}. REVIEW"
    if d.type == "string" and not d.text:
        return f"{_j(d.name)}: ignore   # not read: {'; '.join(d.notes) or 'free text'}"
    parts = [f"type: {d.type}"]
    if d.categories is not None:
        parts.append(f"categories: {_j(d.categories)}")
    if d.min is not None:
        lo, hi = (int(d.min), int(d.max)) if d.type == "int" else (d.min, d.max)
        parts += [f"min: {_j(lo)}", f"max: {_j(hi)}"]
    if d.missing:
        parts.append("missing: keep")
    if d.text:
        parts.append("text: {encoder: tfidf, max_features: 100}")
    notes = []
    if d.missing:
        notes.append(f"{d.missing} missing, kept (imputed/unknown)")
    if d.type == "date":
        notes.append("a date: not a model input")
    if d.leak:
        notes.append(f"LEAKAGE? {d.leak}: left out of features. REVIEW")
    notes += [n for n in d.notes if "sensitive" in n]
    comment = f"   # {'; '.join(notes)}" if notes else ""
    return f"{_j(d.name)}: {{{', '.join(parts)}}}{comment}"


def _render(path, rel, name, source, header, df, cols, na_tokens, target, ttype, labels, lo, hi,
            favourable, sens) -> str:
    features = _features(cols)
    if ttype == "int":
        tline = f"{_j(target)}: {{type: int, min: {lo}, max: {hi}}}"
        positive = _j(int(favourable))
    elif ttype == "bool":
        tline = f"{_j(target)}: {{type: bool}}"
        positive = _j(favourable.strip().lower() in ("true", "t", "yes", "y"))
    else:
        tline = f"{_j(target)}: {{type: category, categories: {_j(labels)}}}"
        positive = _j(favourable)
    out = [
        "# @package _global_",
        f"# Drafted by `python -m pipeline.scaffold {('data' / rel).as_posix()} --target {target} "
        f"--favourable {favourable}`",
        "# from the data itself. Read every line marked REVIEW; then",
        f"#   dvc add data && dvc exp run -S data={name}",
        "# One file, the whole dataset: `data` (the spec), `governance` (gates and card text,",
        "# merged onto conf/governance/base.yaml). Default mitigation: conf/config.yaml's.",
        "data:",
        f"  name: {_j(name)}",
        f"  description: {_j(f'REVIEW: what {target} records and who the rows are.')}",
        "  source:",
        f"    dir: {_j(('data' / rel.parent).as_posix())}",
        f"    files: [{_j(path.name)}]",
    ]
    out += [f"    {k}: {_j(v)}" for k, v in source.items()]
    if na_tokens:
        out.append(f"    na_values: {_j(sorted(na_tokens))}   # read as missing")
    if len(set(header)) != len(header):
        rep = sorted({h for h in header if header.count(h) > 1})
        out.append(f"    names: {_j(list(df.columns))}   # the header repeats {_j(rep)}: "
                   "renamed NAME_2 …")
    out.append("  columns:")
    for c in df.columns:
        out.append("    " + (tline if c == target else _column_line(cols[c])))
    out += [
        "  target:",
        f"    column: {_j(target)}",
        f"    positive: {positive}   # the favourable outcome. REVIEW",
        f"    # favourable_means: REVIEW, in plain words what {target} = {favourable} means",
        "    # unfavourable_means: REVIEW",
        f"  features: {_j(features)}",
        "  sensitive:   # REVIEW: candidates found by header; fairness is measured on these",
    ]
    for attr, s in sens.items():
        out.append(f"    {attr}: {{{', '.join(f'{k}: {_j(v)}' for k, v in s.items())}}}")
    out += [
        "  sensitive_as_features: false",
        "governance:",
        f"  name: {_j(name)}",
        "  fairness:   # REVIEW: the four-fifths rule blocks on the first attribute, warns on "
        "the rest",
    ]
    for i, attr in enumerate(sens):
        warn = "" if i == 0 else ", enforcement: warn"
        out.append("    - {metric: disparate_impact_ratio, min: 0.8, "
                   f"attributes: [{attr}]{warn}}}")
    out += [
        "  model_card:",
        f"    intended_use: {_j(f'REVIEW: who uses predictions of {target}, for what decision.')}",
        f"    out_of_scope: [{_j('REVIEW: uses this model must not have.')}]",
        "    # audit_date: REVIEW, the YYYY-MM-DD of this bias audit (NYC LL 144; the next one",
        "    # is due a year later). Unset, the model card says so next to the verdict.",
    ]
    return "\n".join(out) + "\n"


def _summary(name: str, cols: dict, sens: dict, target: str) -> list[str]:
    pii = [c for c, d in cols.items() if d.pii is not None]
    leaks = [f"{c} ({d.leak})" for c, d in cols.items() if d.leak]
    types: dict[str, int] = {}
    for d in cols.values():
        types[d.type] = types.get(d.type, 0) + 1
    lines = [f"columns: {len(cols) + 1} ({', '.join(f'{n} {t}' for t, n in sorted(types.items()))}"
             f", target {target})",
             f"PII, drafted `pii: drop`: {', '.join(pii) or 'none found'}",
             "sensitive attributes: " + ", ".join(f"{a} <- {s['column']}" for a, s in sens.items())]
    if leaks:
        lines.append(f"possible leakage, left out of features: {'; '.join(leaks)}")
    lines.append(f"next: review conf/data/{name}.yaml (lines marked REVIEW), then "
                 f"`dvc add data && dvc exp run -S data={name}`")
    return lines


def _write(text: str, out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.partial-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _validate(text: str, out: Path) -> None:
    """The draft must validate as written; a failure here is a scaffold bug, said as such."""

    try:
        DatasetSpec.model_validate(yaml.safe_load(text)["data"])
    except Exception as e:  # noqa: BLE001 - reported, never written
        raise RuntimeError(f"scaffold drafted an invalid {out} (a bug): {e}") from e


def main(argv: list[str]) -> int:
    logs.setup()
    p = argparse.ArgumentParser(prog="python -m pipeline.scaffold", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", type=Path)
    p.add_argument("--target", required=True)
    p.add_argument("--favourable", required=True, help="the target value that is favourable")
    p.add_argument("--name", help="dataset name (default: the file's stem)")
    p.add_argument("--sensitive", action="append", default=[], metavar="COLUMN",
                   help="a sensitive attribute's column (repeatable); default: found by header")
    p.add_argument("--max-categories", type=int, default=50)
    p.add_argument("--force", action="store_true", help="replace an existing draft")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return EXIT_USER_ERROR if e.code else 0
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]", "_", args.path.stem)
    root = Path.cwd()
    out = root / "conf" / "data" / f"{name}.yaml"
    try:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise ConfigError(f"--name {name!r}: letters, digits, _ . - only")
        if out.exists() and not args.force:
            raise ConfigError(f"{out.relative_to(root)}: already exists; pass --force to "
                              "replace it")
        text, summary = draft(args.path, root, args.target, args.favourable, name,
                              args.sensitive, args.max_categories)
        _validate(text, out)
        _write(text, out, args.force)
    except PipelineError as e:
        print(f"scaffold: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {out.relative_to(root)}")
    for line in summary:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

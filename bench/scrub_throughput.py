"""Scrubbing throughput and accuracy: govpipe's Scrubber vs Microsoft Presidio.

    .venv/bin/python bench/scrub_throughput.py                 # 50 MB, Presidio on 2 MB
    .venv/bin/python bench/scrub_throughput.py --size-mb 5 --presidio-mb 1
    .venv/bin/python bench/scrub_throughput.py --no-presidio

What it does:

1. Generates ``--size-mb`` of synthetic ML-pipeline log text (seeded; timestamps, metrics,
   paths, ids, versions) with one PII value on ``--pii-rate`` of the lines, spread evenly
   over the seven entity types; every inserted value's span is recorded as a label.
2. Times ``Scrubber.scrub`` over the whole text in 1 MB line-aligned blocks (how files are
   scrubbed) and line by line on a slice (how the logging filter sees text).
3. Creates ``bench/.venv-presidio`` (once; pinned versions below) and runs the Presidio
   half there as a subprocess: ``AnalyzerEngine`` restricted to the same six entity
   types, on an NLP engine wrapping ``spacy.blank("en")`` (no model download is possible
   or needed: all six recognizers are regex/checksum based), plus ``AnonymizerEngine``.
   Presidio is timed on the first ``--presidio-mb`` of the same text; govpipe is timed on
   that same slice too, so the ratio compares like with like.
4. Reports precision/recall of both tools on the labelled slice and on
   ``tests/data/pii_corpus.jsonl`` (overlap matching: a hit counts if it overlaps a
   labelled value of the same type, which is fair to tools that trim spans differently).

Presidio's IP_ADDRESS is mapped to IPV4/IPV6 by whether the span contains ':'. Its
e-mail recognizer calls tldextract, which would try to download the public suffix list;
the worker points it at the snapshot bundled in the package, so nothing leaves the
machine after the one-off ``pip install``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "bench" / ".venv-presidio"
CORPUS = ROOT / "tests" / "data" / "pii_corpus.jsonl"

# What `pip install presidio-analyzer presidio-anonymizer` resolved to when this benchmark
# was written (Python 3.11), pinned so that reruns compare the same Presidio. spaCy,
# phonenumbers and tldextract decide what Presidio finds, so they are pinned as well.
PRESIDIO_PINS = [
    "presidio-analyzer==2.2.366",
    "presidio-anonymizer==2.2.366",
    "spacy==3.8.18",
    "phonenumbers==9.0.43",
    "tldextract==5.4.0",
]

PRESIDIO_TO_OURS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "US_SSN",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",  # split into IPV4 / IPV6 by the span's text
}

BLOCK_CHARS = 1 << 20  # govpipe: 1 MB line-aligned blocks
PRESIDIO_BLOCK_CHARS = 10_000  # Presidio: ~100 lines per analyze() call (its best case)


# ======================================================================== data


def generate_log(size_mb: float, pii_rate: float, seed: int) -> tuple[str, list[list]]:
    """Synthetic log text and its labels ``[[type, start, end], ...]``."""
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import pii_corpus_build as gen  # value generators of the labelled corpus (seeded)

    gen.rng.seed(seed)
    gen.fake.seed_instance(seed)
    rng = random.Random(seed)
    types = ["EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IPV4", "IPV6", "IBAN"]
    services = ["api", "train", "eval", "registry", "db", "scheduler", "gateway"]
    levels = ["INFO"] * 8 + ["DEBUG"] * 3 + ["WARNING", "ERROR"]
    messages = [
        "GET /v1/models/{a}/predict 200 in {b} ms",
        "epoch {a} step {b} loss={f} acc={g} lr=3e-4",
        "cache hit ratio {g} for key model:{a}:v{c}",
        "worker-{a} heartbeat ok, queue depth {b}",
        "saved checkpoint to /data/runs/{h}/ckpt-{b}.pt ({a} MB)",
        "request {h} processed by replica {c} of {a}",
        "order ORD-2024-{b:06d} scored {g} by model v{c}.{a}.{c}",
        "dvc: stage featurize done in {f}s, outputs sha {h}",
        "mlflow: logged metric auc={g} run_id={h}",
        "retrying batch {b} after {c} failures (backoff {f}s)",
        "build {a}.{c}.{b} deployed at 2024-{c:02d}-{c:02d} {c:02d}:{a:02d}:{c:02d}",
        "fairness gate: demographic parity diff {g} <= 0.10",
    ]
    parts: list[str] = []
    labels: list[list] = []
    pos = 0
    target = int(size_mb * 1_000_000)
    n = 0
    while pos < target:
        n += 1
        ts = (
            f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
            f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
            f"{rng.randrange(1000):03d}Z"
        )
        msg = rng.choice(messages).format(
            a=rng.randrange(100),
            b=rng.randrange(1000000),
            c=rng.randrange(1, 13),
            f=f"{rng.random() * 10:.4f}",
            g=f"{rng.random():.4f}",
            h=f"{rng.getrandbits(64):016x}",
        )
        head = f"{ts} {rng.choice(levels)} [{rng.choice(services)}] {msg}"
        if rng.random() < pii_rate:
            typ = types[n % len(types)]
            value = gen.GEN[typ]()
            head += " user="
            start = pos + len(head)
            labels.append([typ, start, start + len(value)])
            line = f"{head}{value} src=node-{rng.randrange(64)}\n"
        else:
            line = head + "\n"
        parts.append(line)
        pos += len(line)
    return "".join(parts), labels


def line_blocks(text: str, block_chars: int) -> list[str]:
    """Cut ``text`` into blocks of about ``block_chars`` that end at a newline."""
    blocks, start = [], 0
    while start < len(text):
        end = text.find("\n", min(start + block_chars, len(text) - 1))
        end = len(text) if end == -1 else end + 1
        blocks.append(text[start:end])
        start = end
    return blocks


def labels_in(labels: list[list], end: int) -> list[list]:
    return [lab for lab in labels if lab[2] <= end]


# ======================================================================== govpipe side


def run_ours(text: str, sample_chars: int, per_line_chars: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from pipeline.privacy import Scrubber

    scrubber = Scrubber.from_config()
    blocks = line_blocks(text, BLOCK_CHARS)
    t0 = time.perf_counter()
    findings = []
    offset = 0
    for b in blocks:
        findings.extend((f.entity, f.start + offset, f.end + offset) for f in scrubber.scan(b))
        offset += len(b)
    t_scan = time.perf_counter() - t0

    t0 = time.perf_counter()
    out_chars = sum(len(scrubber.scrub(b)) for b in blocks)
    t_scrub = time.perf_counter() - t0

    sample = text[:sample_chars]
    sample_blocks = line_blocks(sample, BLOCK_CHARS)
    t0 = time.perf_counter()
    for b in sample_blocks:
        scrubber.scrub(b)
    t_sample = time.perf_counter() - t0

    lines = text[:per_line_chars].splitlines(keepends=True)
    t0 = time.perf_counter()
    for line in lines:
        scrubber.scrub(line)
    t_lines = time.perf_counter() - t0

    mb = len(text) / 1e6
    return {
        "mb": mb,
        "scrub_mb_s": mb / t_scrub,
        "scan_mb_s": mb / t_scan,
        "sample_mb_s": len(sample) / 1e6 / t_sample,
        "per_line_mb_s": sum(map(len, lines)) / 1e6 / t_lines,
        "out_chars": out_chars,
        "findings": findings,
    }


# ======================================================================== Presidio side


def ensure_presidio_venv() -> Path | None:
    """Create ``bench/.venv-presidio`` with the pinned Presidio; return its python."""
    py = VENV / "bin" / "python"
    stamp = VENV / ".pins"
    wanted = "\n".join(PRESIDIO_PINS)
    if py.exists() and stamp.exists() and stamp.read_text() == wanted:
        return py
    print(f"[bench] creating {VENV.relative_to(ROOT)} and installing Presidio ...", flush=True)
    base = sys.executable
    if sys.prefix != sys.base_prefix:  # a venv's python: build from the base interpreter
        base = str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}")
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PRESIDIO_PINS],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        print(f"[bench] pip install failed:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True)
    (VENV / "freeze.txt").write_text(freeze.stdout)
    stamp.write_text(wanted)
    return py


def presidio_worker(args: argparse.Namespace) -> int:
    """Runs inside bench/.venv-presidio. Reads the sample and the corpus, writes JSON."""
    import importlib

    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    # Offline public-suffix list for the e-mail recognizer (see module docstring).
    offline = tldextract.TLDExtract(suffix_list_urls=())
    for modname in (
        "presidio_analyzer.predefined_recognizers.generic.email_recognizer",
        "presidio_analyzer.predefined_recognizers.email_recognizer",
    ):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        mod.tldextract = type("OfflineTld", (), {"extract": staticmethod(offline)})

    class BlankSpacyEngine(SpacyNlpEngine):
        """SpacyNlpEngine over spacy.blank('en'): tokenizer only, nothing to download."""

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    nlp = BlankSpacyEngine(models=[{"lang_code": "en", "model_name": "blank-en"}])
    nlp.load()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    anonymizer = AnonymizerEngine()
    entities = list(PRESIDIO_TO_OURS)

    def to_ours(text: str, results) -> list[list]:
        # Resolve overlaps like the anonymizer does (higher score wins), then map types.
        kept: list = []
        for r in sorted(results, key=lambda r: (-r.score, r.start, -(r.end - r.start))):
            if all(r.end <= k.start or r.start >= k.end for k in kept):
                kept.append(r)
        out = []
        for r in sorted(kept, key=lambda r: r.start):
            t = PRESIDIO_TO_OURS[r.entity_type]
            if t == "IP":
                t = "IPV6" if ":" in text[r.start : r.end] else "IPV4"
            out.append([t, r.start, r.end])
        return out

    text = Path(args.text).read_text(encoding="utf-8")[: args.sample_chars]
    blocks = line_blocks(text, PRESIDIO_BLOCK_CHARS)
    analyzer.analyze(blocks[0], language="en", entities=entities)  # warm-up, not timed
    findings: list[list] = []
    offset = 0
    t0 = time.perf_counter()
    for b in blocks:
        res = analyzer.analyze(b, language="en", entities=entities)
        anonymizer.anonymize(b, res)
        findings.extend([t, s + offset, e + offset] for t, s, e in to_ours(b, res))
        offset += len(b)
    elapsed = time.perf_counter() - t0

    corpus_preds = []
    for line in Path(args.corpus).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus_preds.append(
            to_ours(row["text"], analyzer.analyze(row["text"], language="en", entities=entities))
        )

    from importlib.metadata import version

    Path(args.out).write_text(
        json.dumps(
            {
                "mb": len(text) / 1e6,
                "mb_s": len(text) / 1e6 / elapsed,
                "seconds": elapsed,
                "findings": findings,
                "corpus_preds": corpus_preds,
                "versions": {
                    p: version(p) for p in ("presidio-analyzer", "presidio-anonymizer", "spacy")
                },
            }
        )
    )
    return 0


def run_presidio(text_path: Path, sample_chars: int, out_path: Path) -> dict | str:
    py = ensure_presidio_venv()
    if py is None:
        return "pip install failed (see above)"
    cmd = [
        str(py),
        str(Path(__file__).resolve()),
        "--presidio-worker",
        "--text",
        str(text_path),
        "--sample-chars",
        str(sample_chars),
        "--corpus",
        str(CORPUS),
        "--out",
        str(out_path),
    ]
    env = {**os.environ, "TLDEXTRACT_CACHE": str(out_path.parent / "tldextract-cache")}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return f"worker failed: {r.stderr[-2000:]}"
    return json.loads(out_path.read_text())


# ======================================================================== report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=50.0)
    ap.add_argument("--presidio-mb", type=float, default=2.0)
    ap.add_argument("--per-line-mb", type=float, default=5.0)
    ap.add_argument("--pii-rate", type=float, default=0.02, help="share of lines with PII")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write results here")
    # internal: the Presidio half, run by the venv's python
    ap.add_argument("--presidio-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--text", help=argparse.SUPPRESS)
    ap.add_argument("--sample-chars", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.presidio_worker:
        return presidio_worker(args)

    sys.path.insert(0, str(ROOT))
    from pipeline.privacy import Scrubber
    from pipeline.privacy.evaluate import evaluate, format_table, load_corpus

    workdir = args.workdir or Path(tempfile.gettempdir()) / "govpipe-scrub-bench"
    workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    text, labels = generate_log(args.size_mb, args.pii_rate, args.seed)
    text_path = workdir / "synthetic.log"
    text_path.write_text(text, encoding="utf-8")
    print(
        f"[bench] generated {len(text) / 1e6:.1f} MB, {text.count(chr(10)):,} lines, "
        f"{len(labels):,} PII values in {time.perf_counter() - t0:.1f}s -> {text_path}",
        flush=True,
    )
    # Cut the Presidio sample at a line end.
    sample_chars = text.find("\n", int(args.presidio_mb * 1_000_000)) + 1 or len(text)

    ours = run_ours(text, sample_chars, int(args.per_line_mb * 1_000_000))
    print(f"[bench] govpipe: {ours['scrub_mb_s']:.1f} MB/s on {ours['mb']:.1f} MB", flush=True)

    pres: dict | str | None = None
    if not args.no_presidio:
        print(f"[bench] running Presidio on {sample_chars / 1e6:.1f} MB ...", flush=True)
        pres = run_presidio(text_path, sample_chars, workdir / "presidio.json")

    corpus = load_corpus(CORPUS)
    scrubber = Scrubber.from_config()
    acc_corpus = {"govpipe": evaluate(scrubber.scan, corpus, match="overlap")}
    sample_labels = labels_in(labels, sample_chars)
    sample_rows = [
        {"text": "", "entities": [dict(type=t, start=s, end=e) for t, s, e in sample_labels]}
    ]
    ours_sample = [[f for f in ours["findings"] if f[2] <= sample_chars]]
    acc_sample = {"govpipe": evaluate(ours_sample, sample_rows, match="overlap")}
    acc_full = {
        "govpipe": evaluate(
            [ours["findings"]],
            [{"text": "", "entities": [dict(type=t, start=s, end=e) for t, s, e in labels]}],
            match="overlap",
        )
    }
    if isinstance(pres, dict):
        acc_corpus["presidio"] = evaluate(pres["corpus_preds"], corpus, match="overlap")
        acc_sample["presidio"] = evaluate([pres["findings"]], sample_rows, match="overlap")

    print()
    print("Throughput (single process, one core)")
    print(f"  {'tool / input':<44} {'MB':>7} {'MB/s':>9}")
    print(
        f"  {'govpipe Scrubber, 1 MB blocks, full text':<44} {ours['mb']:>7.1f} "
        f"{ours['scrub_mb_s']:>9.2f}"
    )
    print(
        f"  {'govpipe Scrubber, 1 MB blocks, sample':<44} {sample_chars / 1e6:>7.1f} "
        f"{ours['sample_mb_s']:>9.2f}"
    )
    print(
        f"  {'govpipe Scrubber, line by line':<44} {args.per_line_mb:>7.1f} "
        f"{ours['per_line_mb_s']:>9.2f}"
    )
    if isinstance(pres, dict):
        print(
            f"  {'Presidio analyze+anonymize, ~10 KB blocks':<44} {pres['mb']:>7.1f} "
            f"{pres['mb_s']:>9.3f}"
        )
        ratio = ours["sample_mb_s"] / pres["mb_s"]
        ratio_full = ours["scrub_mb_s"] / pres["mb_s"]
        print(
            f"  speed-up on the same sample: {ratio:.0f}x (full-text govpipe vs "
            f"Presidio sample: {ratio_full:.0f}x)"
        )
        print(f"  Presidio versions: {pres['versions']}")
    elif isinstance(pres, str):
        print(f"  Presidio: not run ({pres})")
    print()
    print(f"Accuracy on the labelled corpus ({len(corpus)} lines, overlap matching)")
    print(format_table(acc_corpus))
    print()
    print(
        f"Accuracy on the benchmark sample ({sample_chars / 1e6:.1f} MB, "
        f"{len(sample_labels)} labelled values)"
    )
    print(format_table(acc_sample))
    print()
    print(f"govpipe on the full text ({len(labels)} labelled values)")
    print(format_table(acc_full))

    if args.json:

        def dump(acc):
            return {tool: {t: vars(m) for t, m in r.items()} for tool, r in acc.items()}

        args.json.write_text(
            json.dumps(
                {
                    "govpipe": {k: v for k, v in ours.items() if k != "findings"},
                    "presidio": {
                        k: v for k, v in pres.items() if k not in ("findings", "corpus_preds")
                    }
                    if isinstance(pres, dict)
                    else pres,
                    "corpus": dump(acc_corpus),
                    "sample": dump(acc_sample),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Signed evidence by hand: make a key pair, verify a registered version's attestation.

    python -m pipeline.attest keygen DIR                      # or: make keygen DIR=...
    python -m pipeline.attest verify VERSION --public-key FILE [registry.KEY=VALUE ...]
    python -m pipeline.attest verify --envelope FILE --artifact PATH --public-key FILE

`verify VERSION` reads the registry settings from params.yaml (dotted overrides after it),
downloads the version's attestation and model, and checks the signature against the public key,
the subject digests against the files actually downloaded, and that the statement says
VALIDATED about this model name and version. The offline form needs no registry: PATH is the
model directory as the registry holds it (`models:/NAME/VERSION`, e.g. from `mlflow artifacts
download`) or the judged `model.pkl`. Prints OK with key id, verdict and time, or every problem.
Exit status: 0 verified, 1 verification failed, 2 a user error (bad arguments, unreadable key,
unknown version, unreachable registry).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.audit import attestation, keys
from pipeline.config import validate
from pipeline.runtime import logs
from pipeline.runtime.errors import PipelineError
from pipeline.runtime.hashing import file_sha256, tree_sha256
from pipeline.tracking import attestations
from pipeline.tracking.client import SHA_TAG, Registry

EXIT_FAILED, EXIT_USER_ERROR = 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # a usage error is a user error: exit 2, no traceback
        self.print_usage(sys.stderr)
        raise PipelineError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m pipeline.attest", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    k = sub.add_parser("keygen", help="write an Ed25519 key pair into DIR (outside the repo)")
    k.add_argument("dir", type=Path)
    v = sub.add_parser("verify", help="verify a version's attestation (online or offline)")
    v.add_argument("version", nargs="?", help="model version number (online)")
    v.add_argument("overrides", nargs="*", help="registry overrides, e.g. registry.model_name=x")
    v.add_argument("--public-key", required=True, type=Path)
    v.add_argument("--envelope", type=Path, help="an attestation file (offline)")
    v.add_argument("--artifact", type=Path, help="the model directory or model.pkl (offline)")
    return p


def keygen(directory: Path) -> int:
    private, public, kid = keys.generate(directory)
    print(f"private key: {private} (0600; point {keys.KEY_FILE_ENV} at it)")
    print(f"public key:  {public} (for verify --public-key and {keys.PUBLIC_KEY_ENV})")
    print(f"key id:      {kid}")
    return 0


def _registry_config(overrides: list[str]) -> Any:
    from omegaconf import OmegaConf

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise PipelineError(f"not an override (KEY=VALUE): {', '.join(bad)}")
    raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(overrides))
    return validate(OmegaConf.to_container(merged)).registry


def online(version: str, overrides: list[str], public) -> tuple[str, dict | None, list[str]]:
    """(what, statement, problems) for a registered version."""

    cfg = _registry_config(overrides)
    reg = Registry(cfg.tracking_uri, retries=cfg.retries, backoff=cfg.backoff_seconds,
                   timeout=cfg.timeout_seconds)
    what = attestation.model_uri(cfg.model_name, version)
    mv = reg.call(f"look up {what}", reg.client.get_model_version, cfg.model_name, version)
    try:
        env = attestations.fetch(reg, cfg.model_name, version)
    except attestation.AttestationError as e:
        return what, None, [str(e)]
    with tempfile.TemporaryDirectory(prefix="govpipe-verify-") as tmp:
        digest = tree_sha256(reg.download(what, Path(tmp)))
    stmt, problems = attestation.examine(
        env, public, name=cfg.model_name, version=version, artifact_sha256=digest,
        model_sha256=(mv.tags or {}).get(SHA_TAG))
    return what, stmt, problems


def offline(envelope: Path, artifact: Path, version: str | None,
            public) -> tuple[str, dict | None, list[str]]:
    try:
        env = json.loads(envelope.read_text(encoding="utf-8"))
    except OSError as e:
        raise PipelineError(f"--envelope {envelope}: cannot read it: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return str(envelope), None, [f"{envelope} is not JSON ({e})"]
    if artifact.is_dir():
        digests = {"artifact_sha256": tree_sha256(artifact)}
    elif artifact.is_file():
        digests = {"model_sha256": file_sha256(artifact)}
    else:
        raise PipelineError(f"--artifact {artifact}: no such file or directory")
    stmt, problems = attestation.examine(env, public, version=version, **digests)
    return str(envelope), stmt, problems


def verify(args: argparse.Namespace) -> int:
    public = keys.public_key(args.public_key, "--public-key")
    if args.envelope or args.artifact:
        if not (args.envelope and args.artifact):
            raise PipelineError("offline verify needs both --envelope FILE and --artifact PATH")
        if args.overrides:
            raise PipelineError("offline verify takes no registry overrides")
        what, stmt, problems = offline(args.envelope, args.artifact, args.version, public)
    elif args.version is None:
        raise PipelineError("verify needs a VERSION (online) or --envelope and --artifact")
    else:
        what, stmt, problems = online(args.version, args.overrides, public)
    if problems:
        print(f"FAILED: {what}", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_FAILED
    pred = stmt["predicate"]
    print(f"OK: {attestation.model_uri(pred['model']['name'], pred['model']['version'])} "
          f"signed by key {keys.keyid(public)}; verdict {pred['verdict']}"
          f"{'' if pred.get('eligible') else ' (not eligible for champion)'}; "
          f"attested {pred['time']} at "
          f"commit {pred['git_commit'][:12]}")
    return 0


def main(argv: list[str]) -> int:
    logs.setup()
    try:
        args = _parser().parse_args(argv)
        return keygen(args.dir) if args.command == "keygen" else verify(args)
    except PipelineError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

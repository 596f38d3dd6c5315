"""Ed25519 keys for signed evidence: where they may come from, and their key id.

The signing key comes from the environment only: `GOVPIPE_SIGNING_KEY_FILE` (a PEM file) or
`GOVPIPE_SIGNING_KEY` (the PEM text itself, e.g. from a CI secret). Never from the repo: a key
file inside the git work tree is one `git add -A` away from being published, so it is refused.
Every problem is a `SigningKeyError` (exit 2) naming the variable or file and
what is wrong; the key's bytes never appear in a message.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.runtime.errors import PipelineError

KEY_FILE_ENV = "GOVPIPE_SIGNING_KEY_FILE"
KEY_ENV = "GOVPIPE_SIGNING_KEY"
PUBLIC_KEY_ENV = "GOVPIPE_PUBLIC_KEY_FILE"  # what conf/serve/source/champion.yaml reads
PRIVATE_NAME, PUBLIC_NAME = "signing.key", "signing.pub"  # what `keygen DIR` writes


class SigningKeyError(PipelineError):
    """A signing or public key is missing, unreadable, of the wrong type, or in the repo."""


def keyid(public: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, hex: names the key in envelopes and tags."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def work_trees(cwd: Path | None = None) -> list[Path]:
    """The git work tree(s) this process runs in: the current directory's, and the main
    repo's when DVC runs a stage in an experiment workspace (DVC_ROOT)."""
    cwd = cwd or Path.cwd()
    roots = []
    for start in {cwd, Path(os.environ.get("DVC_ROOT") or cwd)}:
        try:
            proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start,
                                  capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0 and proc.stdout.strip():
            roots.append(Path(proc.stdout.strip()).resolve())
    return roots


def refuse_in_repo(path: Path, what: str, cwd: Path | None = None) -> None:
    """A key (or key directory) inside the work tree is refused, with the reason."""
    resolved = path.resolve()
    for root in work_trees(cwd):
        if resolved == root or root in resolved.parents:
            raise SigningKeyError(
                f"{what} {path} is inside the git work tree {root}: a key in the repo can be "
                "committed and published by accident; keep it outside (e.g. ~/.config/govpipe)")


def signing_key(environ: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Ed25519PrivateKey | None:
    """The configured signing key, or None when neither variable is set (statements are then
    recorded unsigned, `signed: false`)."""
    environ = os.environ if environ is None else environ
    path, text = environ.get(KEY_FILE_ENV), environ.get(KEY_ENV)
    if path and text:
        raise SigningKeyError(f"both {KEY_FILE_ENV} and {KEY_ENV} are set: set only one")
    if path:
        file = Path(path)
        refuse_in_repo(file, f"{KEY_FILE_ENV}:", cwd)
        try:
            data = file.read_bytes()
        except OSError as e:
            raise SigningKeyError(f"{KEY_FILE_ENV}: cannot read {file}: "
                                  f"{e.strerror or type(e).__name__}") from None
        return _private(data, f"{KEY_FILE_ENV} ({file})")
    if text:
        return _private(text.encode(), KEY_ENV)
    return None


def _private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying the PEM is encrypted
        raise SigningKeyError(f"{where}: the key is password-protected; give an unencrypted "
                              "PKCS#8 PEM (keep it safe by file permissions or a secret store)"
                              ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"{where}: not a PEM private key (expected an Ed25519 key, "
                              "e.g. from `python -m pipeline.attest keygen DIR`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where}: {_kind(key)} key, not Ed25519")
    return key


def public_key(path: str | Path, what: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"{what} {file}: cannot read it: "
                              f"{e.strerror or type(e).__name__}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = " (this is a private key: give the .pub file)" if b"PRIVATE KEY" in data else ""
        raise SigningKeyError(f"{what} {file}: not a PEM public key{hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{what} {file}: {_kind(key)} key, not Ed25519")
    return key


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an ECDSA ({key.curve.name})"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"an RSA-{key.key_size}"
    return f"a {type(key).__name__}"


def generate(directory: Path, cwd: Path | None = None) -> tuple[Path, Path, str]:
    """Write a new key pair into `directory` (outside the repo): the private key readable by
    its owner only (0600), the public key as PEM. Refuses to overwrite either file."""
    refuse_in_repo(directory, "key directory", cwd)
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing:
        raise SigningKeyError(f"{', '.join(existing)} exist(s): not overwritten (a replaced key "
                              "would orphan every statement it signed); choose another DIR")
    key = Ed25519PrivateKey.generate()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 from the start (O_EXCL): never readable by others, not even briefly.
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    except OSError as e:
        raise SigningKeyError(f"cannot write keys into {directory}: "
                              f"{e.strerror or type(e).__name__}") from None
    return private, public, keyid(key.public_key())

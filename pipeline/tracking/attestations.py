"""Attestations in the registry: uploaded with the model version, found again by its tags.

`attest()` (the register stage) uploads the envelope into the version's run as
`attestation/<sha256>.dsse.json` and tags the version `attestation_sha256`, `signed` and
`signing_keyid`. The file name is its own digest, so concurrent registrations of one model
cannot leave the tag pointing at another run's file: every tag value names a file that exists
and hashes to it. `fetch()` downloads the file the tag names and checks that digest; whether
the statement is signed, by whom and about what is `pipeline.audit.attestation.examine`'s job.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.audit import attestation
from pipeline.runtime.outputs import dumps
from pipeline.tracking.client import ARTIFACT_SHA_TAG
from pipeline.tracking.client import SHA_TAG as MODEL_SHA_TAG

ARTIFACT_DIR = "attestation"
SHA_TAG, SIGNED_TAG, KEYID_TAG = "attestation_sha256", "signed", "signing_keyid"


def attest(reg, name: str, version, key: Ed25519PrivateKey | None, tags: dict[str, str],
           decision, copy_to: Path | None = None) -> dict[str, Any]:
    """Sign (if `key`) and upload the statement of `decision` about `version`; `tags` are the
    lineage tags register computed for this run. Returns the envelope, also written to
    `copy_to` (reports/attestation.json). Runs before any alias moves, so a champion always has
    the statement of the judgement that promoted it."""
    env = envelope(name, version, key, tags, decision)
    data = dumps(env).encode()
    digest = hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory(prefix="govpipe-attest-") as tmp:
        path = Path(tmp) / f"{digest}.dsse.json"
        path.write_bytes(data)
        reg.call("upload the attestation", reg.client.log_artifact, version.run_id, str(path),
                 ARTIFACT_DIR)
    keyid = attestation.signer(env)
    # The digest last: it points at a file that is already in place.
    for tag, value in ((SIGNED_TAG, str(key is not None).lower()), (KEYID_TAG, keyid),
                       (SHA_TAG, digest)):
        reg.call("tag the attestation", reg.client.set_model_version_tag, name,
                 version.version, tag, value)
    if copy_to is not None:
        copy_to.write_bytes(data)
    return env


def envelope(name: str, version, key: Ed25519PrivateKey | None, tags: dict[str, str],
             decision) -> dict[str, Any]:
    """The (signed, if `key`) statement of `decision`; `version` None when nothing was
    registered (its subject is then the judged model file only)."""
    artifact = None if version is None else \
        tags.get(ARTIFACT_SHA_TAG) or version.tags[ARTIFACT_SHA_TAG]
    stmt = attestation.statement(
        name, None if version is None else version.version, tags[MODEL_SHA_TAG], artifact,
        {**{k: tags[k] for k in ("dataset", "data_hash", "params_hash", "git_commit")},
         "git_dirty": tags["git_dirty"] == "true", "verdict": decision.verdict,
         "eligible": decision.eligible, "policy_overrides": decision.overrides,
         "gates": [g.as_dict() for g in decision.gates]})
    return attestation.envelope(stmt, key)


def fetch(reg, name: str, version: str | int) -> dict[str, Any]:
    """The envelope of a model version, checked against its `attestation_sha256` tag;
    AttestationError when it has none or the file changed."""
    import mlflow.artifacts

    mv = reg.call("read the model version", reg.client.get_model_version, name, str(version))
    what = f"version {mv.version} of '{name}'"
    digest = (mv.tags or {}).get(SHA_TAG)
    if not digest:
        raise attestation.AttestationError(
            f"{what} has no attestation (tag {SHA_TAG}): registered without this check, or "
            "its registration was cut short")
    with tempfile.TemporaryDirectory(prefix="govpipe-attest-") as tmp:
        local = reg.call("download the attestation", mlflow.artifacts.download_artifacts,
                         run_id=mv.run_id, artifact_path=f"{ARTIFACT_DIR}/{digest}.dsse.json",
                         dst_path=tmp, tracking_uri=reg.uri)
        data = Path(local).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise attestation.AttestationError(
            f"{what}: its attestation file hashes to {actual[:16]}…, not the {SHA_TAG} "
            f"{digest[:16]}… recorded at registration (changed in the artifact store)")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise attestation.AttestationError(f"{what}: its attestation is not JSON ({e})") \
            from None

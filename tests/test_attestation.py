"""Signed evidence (issue 12, point 5): the statement and its envelope, keys from the
environment only, and the real thing end to end — register signs and uploads, `python -m
pipeline.attest verify` checks online and offline, a server with a public key refuses what is
unsigned, tampered or signed by another key."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline import attest
from pipeline.audit import attestation, keys
from tests.conftest import VENV_BIN, clone_built, run, stage

MODEL_SHA, ARTIFACT_SHA = "a" * 64, "b" * 64
GATE = {"id": "fairness:disparate_impact_ratio:sex", "kind": "fairness",
        "metric": "disparate_impact_ratio", "attribute": "sex", "value": 0.89,
        "ci": {"low": 0.81, "high": 0.98}, "basis": "estimate", "compared": 0.89,
        "threshold": 0.8, "direction": ">=", "passed": True, "advisory": False, "hard": False,
        "reason": "", "enforcement": "block", "excluded_groups": []}


def judgement(verdict: str = "VALIDATED") -> dict:
    return {"dataset": "adult", "data_hash": "d" * 64, "params_hash": "p" * 64,
            "git_commit": "c" * 40, "git_dirty": False, "verdict": verdict, "eligible": True,
            "policy_overrides": [], "gates": [GATE]}


def stmt(verdict: str = "VALIDATED") -> dict:
    return attestation.statement("govpipe-adult", 3, MODEL_SHA, ARTIFACT_SHA, judgement(verdict))


def expected(**kw) -> dict:
    return {"name": "govpipe-adult", "version": "3", "model_sha256": MODEL_SHA,
            "artifact_sha256": ARTIFACT_SHA, **kw}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def pem(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


# -- the statement and its envelope -----------------------------------------------------------
def test_pae_is_the_dsse_v1_encoding():
    # the example in the DSSE v1 protocol document
    assert attestation.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_round_trip_signed(key):
    env_ = attestation.envelope(stmt(), key)
    assert env_["payloadType"] == "application/vnd.in-toto+json"
    assert env_["signatures"][0]["keyid"] == \
        hashlib.sha256(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)).hexdigest()
    got, problems = attestation.examine(json.loads(json.dumps(env_)), key.public_key(),
                                        **expected())
    assert problems == []
    assert got["_type"] == "https://in-toto.io/Statement/v1"
    assert got["subject"] == [
        {"name": "model.pkl", "digest": {"sha256": MODEL_SHA}},
        {"name": "models:/govpipe-adult/3", "digest": {"sha256": ARTIFACT_SHA}}]
    pred = got["predicate"]
    assert pred["signed"] is True and pred["verdict"] == "VALIDATED"
    assert pred["model"] == {"name": "govpipe-adult", "version": "3"}
    assert pred["time"].endswith("Z")
    gate = pred["gates"][0]
    assert (gate["value"], gate["ci"], gate["threshold"], gate["passed"]) == \
        (0.89, {"low": 0.81, "high": 0.98}, 0.8, True)


def _tamper(env_: dict, **predicate) -> dict:
    body = json.loads(base64.b64decode(env_["payload"]))
    body["predicate"].update(predicate)
    return {**env_, "payload": base64.b64encode(json.dumps(body).encode()).decode()}


def test_a_tampered_payload_is_refused(key):
    forged = _tamper(attestation.envelope(stmt("REJECTED"), key), verdict="VALIDATED")
    _, problems = attestation.examine(forged, key.public_key(), **expected())
    assert len(problems) == 1 and "changed after it was signed" in problems[0], problems


def test_a_signature_from_another_key_is_refused(key):
    other = Ed25519PrivateKey.generate()
    _, problems = attestation.examine(attestation.envelope(stmt(), other), key.public_key(),
                                      **expected())
    assert len(problems) == 1 and "signed by another key" in problems[0], problems
    assert keys.keyid(other.public_key())[:16] in problems[0]


def test_a_subject_that_does_not_match_the_artefact_is_refused(key):
    _, problems = attestation.examine(attestation.envelope(stmt(), key), key.public_key(),
                                      **expected(artifact_sha256="e" * 64, version="4"))
    assert any("subject models:/govpipe-adult/3 has sha256 bbbbbbbb" in p
               and "hashes to eeeeeeee" in p for p in problems), problems
    assert any("about version '3', not 4" in p for p in problems), problems


def test_a_signed_rejected_statement_is_not_validated(key):
    _, problems = attestation.examine(attestation.envelope(stmt("REJECTED"), key),
                                      key.public_key(), **expected())
    assert problems == ["verdict is 'REJECTED', not 'VALIDATED'"]


def test_a_signed_challenger_verifies_but_is_not_servable(key):
    challenger = {**judgement(), "eligible": False, "policy_overrides": ["metrics.min_count"]}
    env_ = attestation.envelope(attestation.statement(
        "govpipe-adult", 3, MODEL_SHA, ARTIFACT_SHA, challenger), key)
    assert attestation.examine(env_, key.public_key(), **expected())[1] == []
    _, problems = attestation.examine(env_, key.public_key(), **expected(), served=True)
    assert problems == ["the statement says it may not be champion (not eligible)",
                        "the statement says it was judged under overridden policy "
                        "(metrics.min_count)"]


def test_unsigned_statement_says_so_and_never_verifies(key):
    env_ = attestation.envelope(stmt(), None)
    assert env_["signatures"] == []
    got, problems = attestation.examine(env_, key.public_key(), **expected())
    assert got["predicate"]["signed"] is False
    assert len(problems) == 1 and "unsigned (signed: false)" in problems[0]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda e: [e], "not a JSON object"),
    (lambda e: {**e, "payloadType": "text/plain"}, "payloadType is 'text/plain'"),
    (lambda e: {**e, "payload": "not base64!"}, "payload is not base64"),
    (lambda e: {**e, "payload": base64.b64encode(b"{").decode()}, "payload is not JSON"),
    (lambda e: {**e, "payload": base64.b64encode(b'{"_type": "x"}').decode()},
     "not an in-toto Statement v1"),
    (lambda e: {**e, "signatures": "x"}, "signatures is not a list of objects with a 'sig'"),
])
def test_a_malformed_envelope_names_what_is_wrong(key, mutate, message):
    _, problems = attestation.examine(mutate(attestation.envelope(stmt(), key)),
                                      key.public_key())
    assert len(problems) == 1 and message in problems[0], problems


# -- keys: the environment only, never the repo -------------------------------------------------
def test_no_key_configured_means_unsigned(tmp_path):
    assert keys.signing_key({}, cwd=tmp_path) is None


def test_a_key_from_a_file_or_from_pem_text(tmp_path, key):
    path = tmp_path / "k.pem"
    path.write_bytes(pem(key))
    for environ in ({keys.KEY_FILE_ENV: str(path)}, {keys.KEY_ENV: pem(key).decode()}):
        got = keys.signing_key(environ, cwd=tmp_path)
        assert keys.keyid(got.public_key()) == keys.keyid(key.public_key())


@pytest.mark.parametrize("case", ["missing", "unreadable", "not-pem", "ec", "encrypted", "both"])
def test_a_bad_signing_key_is_a_clear_error_without_the_key(tmp_path, key, case):
    path = tmp_path / "k.pem"
    environ = {keys.KEY_FILE_ENV: str(path)}
    if case == "unreadable":
        path.mkdir()  # a directory: unreadable as a file, even for root
    elif case == "not-pem":
        path.write_text("hello")
    elif case == "ec":
        path.write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    elif case == "encrypted":
        path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
    elif case == "both":
        environ[keys.KEY_ENV] = pem(key).decode()
    with pytest.raises(keys.SigningKeyError) as info:
        keys.signing_key(environ, cwd=tmp_path)
    msg = str(info.value)
    assert {"missing": "cannot read", "unreadable": "Is a directory", "not-pem": "not a PEM",
            "ec": "an ECDSA (secp256r1) key, not Ed25519", "encrypted": "password-protected",
            "both": "set only one"}[case] in msg, msg
    assert keys.KEY_FILE_ENV in msg and "PRIVATE KEY" not in msg


def test_a_key_inside_the_repo_is_refused(tmp_path, key):
    repo = tmp_path / "repo"
    (repo / "keys").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "keys" / "k.pem").write_bytes(pem(key))
    with pytest.raises(keys.SigningKeyError, match="inside the git work tree"):
        keys.signing_key({keys.KEY_FILE_ENV: str(repo / "keys" / "k.pem")}, cwd=repo)
    with pytest.raises(keys.SigningKeyError, match="inside the git work tree"):
        keys.generate(repo / "keys", cwd=repo)


def test_keygen_writes_a_private_0600_key_and_never_overwrites(tmp_path, capsys):
    assert attest.main(["keygen", str(tmp_path / "k")]) == 0
    private, public = tmp_path / "k" / keys.PRIVATE_NAME, tmp_path / "k" / keys.PUBLIC_NAME
    assert private.stat().st_mode & 0o777 == 0o600
    loaded = keys.signing_key({keys.KEY_FILE_ENV: str(private)}, cwd=tmp_path)
    assert keys.keyid(keys.public_key(public)) == keys.keyid(loaded.public_key())
    assert keys.keyid(loaded.public_key()) in capsys.readouterr().out
    before = private.read_bytes()
    assert attest.main(["keygen", str(tmp_path / "k")]) == 2
    assert "not overwritten" in capsys.readouterr().err and private.read_bytes() == before


def test_a_private_key_given_as_public_key_is_named(tmp_path, key):
    (tmp_path / "k.pem").write_bytes(pem(key))
    with pytest.raises(keys.SigningKeyError, match="this is a private key"):
        keys.public_key(tmp_path / "k.pem")


def test_offline_verify_exit_codes(tmp_path, key, capsys):
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model bytes")
    sha = hashlib.sha256(b"model bytes").hexdigest()
    good = attestation.statement("govpipe-adult", 3, sha, ARTIFACT_SHA, judgement())
    (tmp_path / "ok.json").write_text(json.dumps(attestation.envelope(good, key)))
    (tmp_path / "key.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    args = ["verify", "--public-key", str(tmp_path / "key.pub"), "--artifact", str(model)]
    assert attest.main([*args, "--envelope", str(tmp_path / "ok.json")]) == 0
    assert "OK: models:/govpipe-adult/3 signed by key" in capsys.readouterr().out
    model.write_bytes(b"other bytes")
    assert attest.main([*args, "--envelope", str(tmp_path / "ok.json")]) == 1
    assert "subject model.pkl has sha256" in capsys.readouterr().err
    assert attest.main([*args, "--envelope", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert attest.main(["verify", "--public-key", str(tmp_path / "key.pub")]) == 2
    assert "needs a VERSION" in capsys.readouterr().err


# -- the real thing: register, the registry, the CLI, a server ----------------------------------
DVC = str(VENV_BIN / "dvc")
MODEL = "govpipe-adult"


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    private, public, kid = keys.generate(d / "signer", cwd=d)
    _, other, _ = keys.generate(d / "other", cwd=d)
    return {"private": private, "public": public, "other": other, "keyid": kid}


@pytest.fixture(scope="module")
def clone(tmp_path_factory, built) -> Path:
    return clone_built(built, tmp_path_factory.mktemp("attest") / "repo")


def test_a_bad_signing_key_registers_nothing(clone, keypair):
    for bad, reason in ((keypair["private"].with_name("missing.key"), "cannot read"),
                        (keypair["public"], "not a PEM private key")):
        proc = stage(clone, "register", "--dvc", GOVPIPE_SIGNING_KEY_FILE=str(bad))
        assert proc.returncode == 2, proc.stderr
        assert reason in proc.stderr and "Traceback" not in proc.stderr
    assert not (clone / "mlflow.db").exists(), "the registry was touched before the key"
    assert not (clone / "reports" / "attestation.json").exists()


@pytest.fixture(scope="module")
def registered(clone, keypair) -> Path:
    """Version 1 registered by `dvc repro` with a signing key: the champion, signed."""
    out = run([DVC, "repro"], clone, GOVPIPE_SIGNING_KEY_FILE=str(keypair["private"]))
    assert "Running stage 'register'" in out.stdout, out.stdout
    return clone


def client(repo: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def verify(repo: Path, public: Path, *args: str) -> subprocess.CompletedProcess:
    return stage(repo, "attest", "verify", *args, "--public-key", str(public))


def stored_envelope(repo: Path) -> Path:
    tag = client(repo).get_model_version(MODEL, "1").tags["attestation_sha256"]
    [path] = (repo / "mlartifacts").rglob(f"attestation/{tag}.dsse.json")
    return path


def test_register_signs_and_uploads_the_statement(registered, keypair):
    mv = client(registered).get_model_version_by_alias(MODEL, "champion")
    assert str(mv.version) == "1"
    assert mv.tags["signed"] == "true" and mv.tags["signing_keyid"] == keypair["keyid"]
    local = registered / "reports" / "attestation.json"
    assert hashlib.sha256(local.read_bytes()).hexdigest() == mv.tags["attestation_sha256"]
    assert stored_envelope(registered).read_bytes() == local.read_bytes()
    body = json.loads(base64.b64decode(json.loads(local.read_text())["payload"]))
    assert body["subject"][0]["digest"]["sha256"] == mv.tags["model_sha256"]
    assert body["subject"][1] == {"name": f"models:/{MODEL}/1",
                                  "digest": {"sha256": mv.tags["artifact_sha256"]}}
    pred = body["predicate"]
    assert pred["git_commit"] == mv.tags["git_commit"] and pred["signed"] is True
    gate_tags = [k for k in mv.tags if k.startswith("gate.") and k != "gate.privacy_scan"]
    assert len(pred["gates"]) == len(gate_tags) > 0
    assert all({"value", "ci", "threshold", "passed"} <= set(g) for g in pred["gates"])


def test_verify_online_and_offline(registered, keypair, tmp_path):
    proc = verify(registered, keypair["public"], "1")
    assert proc.returncode == 0, proc.stderr
    assert f"OK: models:/{MODEL}/1 signed by key {keypair['keyid']}; verdict VALIDATED" \
        in proc.stdout
    # Offline: the envelope and the model directory as the registry holds it (downloaded as
    # the README says), then no registry at all.
    run([str(VENV_BIN / "mlflow"), "artifacts", "download", "-u", f"models:/{MODEL}/1",
         "-d", str(tmp_path / "model")], tmp_path,
        MLFLOW_TRACKING_URI=f"sqlite:///{registered / 'mlflow.db'}")
    for artifact in (tmp_path / "model", registered / "artifacts" / "model.pkl"):
        proc = verify(tmp_path, keypair["public"], "--envelope",
                      str(registered / "reports" / "attestation.json"), "--artifact", str(artifact))
        assert proc.returncode == 0, proc.stderr
    proc = verify(registered, keypair["other"], "1")
    assert proc.returncode == 1 and "signed by another key" in proc.stderr, proc.stderr
    proc = verify(registered, keypair["public"], "7")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_a_tampered_envelope_in_the_artifact_store_fails(registered, keypair):
    path = stored_envelope(registered)
    original = path.read_bytes()
    c = client(registered)
    try:
        path.write_bytes(original.replace(b'"payload"', b'"payload" ', 1))  # one byte more
        proc = verify(registered, keypair["public"], "1")
        assert proc.returncode == 1 and "changed in the artifact store" in proc.stderr
        # A forger who can write tags too: a new verdict, the tag pointing at the new file.
        forged = json.dumps(_tamper(json.loads(original), dataset="german")).encode()
        digest = hashlib.sha256(forged).hexdigest()
        path.with_name(f"{digest}.dsse.json").write_bytes(forged)
        c.set_model_version_tag(MODEL, "1", "attestation_sha256", digest)
        proc = verify(registered, keypair["public"], "1")
        assert proc.returncode == 1 and "changed after it was signed" in proc.stderr
    finally:
        path.write_bytes(original)
        c.set_model_version_tag(MODEL, "1", "attestation_sha256",
                                hashlib.sha256(original).hexdigest())
    assert verify(registered, keypair["public"], "1").returncode == 0


def test_a_server_with_a_public_key_refuses_unsigned_and_serves_signed(registered, keypair,
                                                                        monkeypatch):
    from tests.processes import free_port
    from tests.serve_process import KEY, Server, serve_env

    # Registered again without a key: the same version, its statement now unsigned.
    run([sys.executable, "-m", "pipeline.register", "--dvc"], registered)
    mv = client(registered).get_model_version(MODEL, "1")
    assert mv.tags["signed"] == "false" and mv.tags["signing_keyid"] == ""
    proc = subprocess.run(
        [sys.executable, "-m", "serve", f"serve.port={free_port()}",
         f"serve.source.public_key={keypair['public']}"],
        cwd=registered, env=serve_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unsigned (signed: false)" in proc.stderr and "Traceback" not in proc.stderr
    # Signed again; the key from the environment this time (serve.source.public_key_env).
    run([sys.executable, "-m", "pipeline.register", "--dvc"], registered,
        GOVPIPE_SIGNING_KEY_FILE=str(keypair["private"]))
    monkeypatch.setenv(keys.PUBLIC_KEY_ENV, str(keypair["public"]))
    srv = Server(registered, [])
    try:
        srv.start()
        import httpx

        info = httpx.get(f"{srv.url}/info", headers={"X-API-Key": KEY}, timeout=10)
        assert info.status_code == 200 and info.json()["serving_version"] == "1", info.text
    finally:
        srv.stop()
    monkeypatch.setenv(keys.PUBLIC_KEY_ENV, str(keypair["other"]))
    proc = subprocess.run([sys.executable, "-m", "serve", f"serve.port={free_port()}"],
                          cwd=registered, env=serve_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "signed by another key" in proc.stderr, proc.stderr[-2000:]

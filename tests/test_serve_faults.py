"""The real server under faults, at the default limits: the largest requests with busy cores,
signals, killed processes, a refused model, hostile connections (issue 10).

Every test starts its own `python -m serve` (or shares the module's edge server) and stops
it; a test that kills a process checks that nothing is left and the port is free.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import psutil
import pytest

from tests.processes import free_port
from tests.serve_process import INPUTS, KEY, Server, raw, record, serve_env
from tests.serve_sources import point

pytestmark = pytest.mark.slow

DEFAULT_MAX_RECORDS = 1000
SHUTDOWN_TIMEOUT = 10  # conf/serve/default.yaml


@pytest.fixture(scope="module")
def rows(built) -> pd.DataFrame:
    df = pd.read_parquet(built / "artifacts" / "split" / "test.parquet")
    return df[INPUTS].drop_duplicates().reset_index(drop=True)


def local(tmp_path, model, *overrides: str) -> Server:
    return Server(tmp_path, ["serve/source=local", f"serve.source.path={model}",
                             "serve.workers_per_device=1", *overrides])


@contextlib.contextmanager
def busy_cores(n: int = 2):
    """Keep the CPUs busy (the race of finding 1 shows when they are)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
    return out


def wait_gone(procs: list[psutil.Process], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(procs)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# -- finding 1: answers of any size cross between processes ---------------------------------
@pytest.mark.parametrize("max_batch_size", [1, 64])
def test_largest_requests_cross_intact_with_busy_cores(serve_models, rows, tmp_path,
                                                       max_batch_size):
    srv = local(tmp_path, serve_models["a"], f"serve.max_batch_size={max_batch_size}",
                "serve.cache.enabled=false").start()
    try:
        body = json.dumps({"records": [record(rows, i) for i in range(DEFAULT_MAX_RECORDS)]})
        assert len(body) <= 1048576  # within the default payload limit too
        with busy_cores(), ThreadPoolExecutor(6) as pool:
            for _ in range(3):
                got = list(pool.map(lambda _: srv.post(body.encode()), range(6)))
                assert [r.status_code for r in got] == [200] * 6, got[0].text[:300]
                assert all(len(r.json()["predictions"]) == DEFAULT_MAX_RECORDS for r in got)
        assert srv.post(record(rows, 0)).status_code == 200
        assert httpx.get(f"{srv.url}/readyz", timeout=10).json()["status"] == "ok"
        assert srv.metric("govpipe_transport_errors_total") == 0
    finally:
        srv.stop()


# -- finding 2: SIGINT drains, to the main process or to the whole group ----------------------
@pytest.mark.parametrize("to", ["main", "group"])
def test_sigint_drains_in_flight_requests_then_stops_everything(serve_models, rows, tmp_path,
                                                               to):
    srv = Server(tmp_path, [
        "serve/source=local", "serve.source._target_=tests.serve_sources.SlowSource",
        f"serve.source.path={serve_models['a']}", "+serve.source.delay=0.3",
        "serve.max_batch_size=1", "serve.cache.enabled=false"]).start()
    try:
        children = srv.tree()
        with ThreadPoolExecutor(3) as pool:
            pending = [pool.submit(srv.post, record(rows, i)) for i in range(3)]
            time.sleep(0.3)  # the requests are in flight (0.3 s each, one at a time)
            if to == "main":
                srv.proc.send_signal(signal.SIGINT)
            else:  # Ctrl-C in a terminal
                os.killpg(srv.proc.pid, signal.SIGINT)
            codes = [f.result().status_code for f in pending]
        assert codes == [200, 200, 200]
        assert srv.proc.wait(SHUTDOWN_TIMEOUT + 5) == 0
        assert wait_gone(children) == []
        assert port_free(srv.port)
        assert "shutting down (SIGINT)" in srv.text() and "Traceback" not in srv.text()
    finally:
        srv.stop()


# -- finding 3: a killed process never leaves a half service ----------------------------------
def _kind(p: psutil.Process, main: psutil.Process) -> str:
    cmd = " ".join(p.cmdline())
    if "resource_tracker" in cmd:
        return "tracker"
    if "spawn_main" in cmd or "multiprocessing.spawn" in cmd:
        return "worker"
    return "http" if p.cmdline() == main.cmdline() else "other"


@pytest.mark.parametrize("victim", ["main", "http", "worker"])
def test_sigkill_of_any_process_leaves_nothing_serving(serve_models, tmp_path, victim):
    srv = local(tmp_path, serve_models["a"]).start()
    try:
        main = psutil.Process(srv.proc.pid)
        children = srv.tree()
        kinds = {p.pid: _kind(p, main) for p in children}
        assert sorted(k for k in kinds.values() if k != "tracker") == ["http", "worker"], kinds
        target = main if victim == "main" else next(p for p in children
                                                    if kinds[p.pid] == victim)
        target.send_signal(signal.SIGKILL)
        if victim != "main":
            assert srv.proc.wait(SHUTDOWN_TIMEOUT + 5) == 1  # the service exits non-zero
            assert f"exited with code -{signal.SIGKILL}; stopping the service" in srv.text()
        assert wait_gone(children) == []  # no orphan keeps the port
        assert port_free(srv.port)
    finally:
        srv.stop()


# -- ModelRefused at startup (issue 9's contract) ----------------------------------------------
def test_refused_model_at_startup_is_one_error_line_and_exit_2(serve_models, tmp_path):
    shutil.copy(serve_models["a"], tmp_path / "a.pkl")
    point(tmp_path / "pointer.json", "a.pkl", refuse="a.pkl")
    proc = subprocess.run(
        [sys.executable, "-m", "serve", "serve/source=local",
         "serve.source._target_=tests.serve_sources.PointerSource", "~serve.source.path",
         f"+serve.source.pointer={tmp_path / 'pointer.json'}", f"serve.port={free_port()}"],
        cwd=tmp_path, env=serve_env(), capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [json.loads(line) for line in proc.stderr.splitlines()
              if line.startswith("{") and '"level": "error"' in line]
    assert len(errors) == 1, errors
    assert "refused: version" in errors[0]["msg"] and "verdict=REJECTED" in errors[0]["msg"]
    assert "Traceback" not in proc.stderr


# -- finding 4: bounded edges, at the default limits ------------------------------------------
@pytest.fixture(scope="module")
def edge(serve_models, tmp_path_factory):
    srv = local(tmp_path_factory.mktemp("serve-edges"), serve_models["a"]).start()
    try:
        yield srv
    finally:
        srv.stop()


def _send_until_refused(port: int, head: bytes, size: int) -> bytes:
    """Send `head` then `size` bytes of header, as long as the server reads; its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        sent = 0
        with contextlib.suppress(OSError):
            while sent < size:
                s.sendall(b"a" * 65536)
                sent += 65536
        out = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                out += chunk
        return out


def test_huge_or_too_many_headers_are_431(edge):
    reply = _send_until_refused(edge.port, b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: ", 8 << 20)
    assert reply.startswith(b"HTTP/1.1 431") and b"application/json" in reply
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    reply = raw(edge.port, b"GET /livez HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431")
    assert raw(edge.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")


def test_slow_clients_and_idle_connections_are_cut_off(edge, rows):
    body = json.dumps(record(rows, 0)).encode()
    results: dict[str, bytes] = {}

    def slow(name: str, first: bytes) -> None:
        with socket.create_connection(("127.0.0.1", edge.port), timeout=30) as s:
            s.sendall(first)
            out = b""
            with contextlib.suppress(OSError):
                while chunk := s.recv(65536):
                    out += chunk
            results[name] = out

    cases = {
        "headers": b"GET /livez HTTP/1.1\r\nHost: t\r\n",  # never finishes its headers
        "body": (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"X-API-Key: " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                 + body[:10]),  # a trickle that stops
        "idle": b"",  # connects, says nothing
    }
    threads = [threading.Thread(target=slow, args=c) for c in cases.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results["headers"].startswith(b"HTTP/1.1 408")
    assert results["body"].startswith(b"HTTP/1.1 408") and b"application/json" in results["body"]
    assert results["idle"] == b""  # closed by the server, nothing sent


def test_thousands_of_idle_connections_leave_probes_answering(edge, rows):
    socks = []
    try:
        for _ in range(2000):
            socks.append(socket.create_connection(("127.0.0.1", edge.port), timeout=10))
        time.sleep(0.5)  # accepted by the server
        for probe in ("/livez", "/readyz"):
            r = httpx.get(f"{edge.url}{probe}", timeout=10)
            assert r.status_code == 200, (probe, r.text)
        r = edge.post(record(rows, 1))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/json" and "detail" in r.json()
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and edge.post(record(rows, 1)).status_code != 200:
        time.sleep(0.2)
    assert edge.post(record(rows, 1)).status_code == 200

"""`agentfleet serve` over HTTPS, and the rule for listening beyond loopback.

The certificates are self-signed, made in the test with the `openssl` command line; the
servers are real `agentfleet serve` processes, spoken to with the standard library's
`ssl` and `http.client` only.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfleet.cli import app
from tests.web.live import free_port

TOKEN = "tls-test-token-0123456789"
SERVE = [sys.executable, "-c", "from agentfleet.cli import main; main()", "serve"]


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def make_pair(where: Path, name: str) -> Pair:
    """A self-signed certificate for localhost and 127.0.0.1, and its unencrypted key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed (it makes the test certificates)")
    pair = Pair(where / f"{name}.crt", where / f"{name}.key")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return pair


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pair, Pair]:
    where = tmp_path_factory.mktemp("certs")
    return make_pair(where, "fleet"), make_pair(where, "other")


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))  # checks the name (127.0.0.1) too


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes, bytes]:
    """Status, body and the DER certificate the server presented."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        body = response.read()
        assert conn.sock is not None
        presented = conn.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        assert presented is not None
        return response.status, body, presented
    finally:
        conn.close()


def plain_post_login(port: int, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = f"token={TOKEN}&next=/"
    conn.request(
        "POST",
        "/login",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@dataclass
class Running:
    proc: subprocess.Popen[str]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def serve(
    work: Path, *args: str, host: str = "127.0.0.1", ready: ssl.SSLContext | None = None
) -> Iterator[Running]:
    """`agentfleet serve --host HOST --port FREE ARGS...`, until it answers /healthz.

    `ready` is the context to ask over HTTPS; without it the check is plain HTTP. Only the
    process started here is stopped at the end.
    """
    port = free_port()
    env = {**os.environ, "AGENTFLEET_TOKEN": TOKEN, "AGENTFLEET_DB": f"sqlite:///{work / 'f.db'}"}
    for name in ("AGENTFLEET_TLS_CERT", "AGENTFLEET_TLS_KEY"):
        env.pop(name, None)
    log_path = work / f"serve-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*SERVE, "--host", host, "--port", str(port), *args],
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    running = Running(proc, port, log_path)
    try:
        end = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{running.log()}")
            try:
                if ready is not None:
                    status = https_get(port, "/healthz", ready)[0]
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/healthz")
                    status = conn.getresponse().status
                    conn.close()
                if status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > end:
                raise AssertionError(f"serve did not answer within 20 s:\n{running.log()}")
            time.sleep(0.05)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_serve(work: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `agentfleet serve ARGS...` that is expected to refuse, and its exit code and output."""
    full_env = {**os.environ, "AGENTFLEET_DB": f"sqlite:///{work / 'f.db'}", **(env or {})}
    for name in ("AGENTFLEET_TOKEN", "AGENTFLEET_TLS_CERT", "AGENTFLEET_TLS_KEY"):
        if name not in (env or {}):
            full_env.pop(name, None)
    done = subprocess.run(
        [*SERVE, *args], env=full_env, cwd=work, capture_output=True, text=True, timeout=60
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


# -- HTTPS --------------------------------------------------------------------------------


def test_serves_https_with_the_given_certificate(certs: tuple[Pair, Pair], tmp_path: Path) -> None:
    fleet, _ = certs
    context = trusting(fleet.cert)
    args = ("--tls-cert", str(fleet.cert), "--tls-key", str(fleet.key))
    with serve(tmp_path, *args, ready=context) as running:
        status, body, presented = https_get(running.port, "/healthz", context)
        assert status == 200 and b'"ok":true' in body
        assert presented == ssl.PEM_cert_to_DER_cert(fleet.cert.read_text())
        status, body, _ = https_get(running.port, "/api/plans", context)
        assert status == 200, body  # the token works over HTTPS as over HTTP

        # a client that does not trust the certificate is turned away by its own check
        with pytest.raises(ssl.SSLCertVerificationError):
            https_get(running.port, "/healthz", ssl.create_default_context())

        # plain HTTP to the HTTPS port gets no answer
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
        with pytest.raises((http.client.HTTPException, OSError)):
            conn.request("GET", "/healthz")
            conn.getresponse()
        conn.close()

        # the sign-in cookie is Secure over HTTPS
        conn = http.client.HTTPSConnection("127.0.0.1", running.port, timeout=5, context=context)
        conn.request(
            "POST",
            "/login",
            body=f"token={TOKEN}&next=/",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 303
        assert "secure" in response.getheader("set-cookie", "").lower()

        assert running.alive()
    lines = running.log()
    assert f"at https://127.0.0.1:{running.port}/" in lines
    assert "http://" not in lines  # every address it prints is the HTTPS one
    assert '"tls": true' in lines


def test_the_generated_sign_in_link_is_https(certs: tuple[Pair, Pair], tmp_path: Path) -> None:
    fleet, _ = certs
    port = free_port()
    env = {**os.environ, "AGENTFLEET_DB": f"sqlite:///{tmp_path / 'f.db'}"}
    env.pop("AGENTFLEET_TOKEN", None)
    env.update(AGENTFLEET_TLS_CERT=str(fleet.cert), AGENTFLEET_TLS_KEY=str(fleet.key))
    proc = subprocess.Popen(
        [*SERVE, "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert first.rstrip().endswith(f"at https://127.0.0.1:{port}/"), first
    assert second.startswith(f"Open https://127.0.0.1:{port}/?token="), second


# -- bad certificates and keys are refused before anything opens --------------------------


def test_a_bad_key_file_is_refused_by_name(certs: tuple[Pair, Pair], tmp_path: Path) -> None:
    fleet, _ = certs
    bad = tmp_path / "broken.key"
    bad.write_text("this is not a key\n")
    code, out = run_serve(
        tmp_path,
        "--tls-cert",
        str(fleet.cert),
        "--tls-key",
        str(bad),
        env={"AGENTFLEET_TOKEN": TOKEN},
    )
    assert code == 2, out
    assert f"the private key file {bad} (--tls-key) holds no PEM private key" in out
    assert "Traceback" not in out and "serving" not in out
    assert not (tmp_path / "f.db").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("cert only", "--tls-cert needs --tls-key too"),
        ("key only", "--tls-key needs --tls-cert too"),
        ("missing cert", "the certificate file {missing} (--tls-cert) does not exist"),
        ("directory key", "the private key file {dir} (--tls-key) is a directory, not a file"),
        (
            "mismatched",
            "the private key file {other.key} (--tls-key) is not the private key of "
            "the certificate file {fleet.cert} (--tls-cert): they do not match",
        ),
        (
            "swapped",
            "the certificate file {fleet.key} (--tls-cert) holds no PEM certificate",
        ),
        ("damaged cert", "the certificate file {damaged} (--tls-cert) is not a valid PEM"),
        ("encrypted key", "the private key file {encrypted} (--tls-key) is encrypted"),
    ],
)
def test_each_bad_pair_is_refused_naming_the_file_and_the_problem(
    certs: tuple[Pair, Pair], tmp_path: Path, case: str, message: str
) -> None:
    fleet, other = certs
    damaged = tmp_path / "damaged.crt"
    damaged.write_text(
        "-----BEGIN CERTIFICATE-----\nMIIBbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    )
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBbm90\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    missing = tmp_path / "missing.crt"
    args = {
        "cert only": ["--tls-cert", str(fleet.cert)],
        "key only": ["--tls-key", str(fleet.key)],
        "missing cert": ["--tls-cert", str(missing), "--tls-key", str(fleet.key)],
        "directory key": ["--tls-cert", str(fleet.cert), "--tls-key", str(tmp_path)],
        "mismatched": ["--tls-cert", str(fleet.cert), "--tls-key", str(other.key)],
        "swapped": ["--tls-cert", str(fleet.key), "--tls-key", str(fleet.cert)],
        "damaged cert": ["--tls-cert", str(damaged), "--tls-key", str(fleet.key)],
        "encrypted key": ["--tls-cert", str(fleet.cert), "--tls-key", str(encrypted)],
    }[case]
    db = tmp_path / "f.db"
    result = CliRunner().invoke(
        app, ["serve", "--db", f"sqlite:///{db}", *args], env={"AGENTFLEET_TOKEN": TOKEN}
    )
    assert result.exit_code == 2, result.output
    expected = message.format(
        fleet=fleet,
        other=other,
        missing=missing,
        dir=tmp_path,
        damaged=damaged,
        encrypted=encrypted,
    )
    assert expected in " ".join(result.output.split())
    assert not db.exists()  # refused before the database opens


# -- beyond loopback: HTTPS, or plain HTTP only when asked ----------------------------------


def test_plain_http_beyond_loopback_is_refused_before_binding(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:  # had serve tried to bind, it would fail differently
        holder.bind(("0.0.0.0", port))
        holder.listen()
        code, out = run_serve(
            tmp_path, "--host", "0.0.0.0", "--port", str(port), env={"AGENTFLEET_TOKEN": TOKEN}
        )
    assert code == 2, out
    assert "refusing to listen on 0.0.0.0 over plain HTTP" in out
    assert "give --tls-cert and --tls-key to serve HTTPS" in out
    assert "or pass --insecure-http when a reverse proxy" in out
    assert "serving" not in out and "address already in use" not in out.lower()
    assert not (tmp_path / "f.db").exists()


def test_insecure_http_lets_a_proxy_sit_in_front(tmp_path: Path) -> None:
    with serve(tmp_path, "--insecure-http", host="0.0.0.0") as running:
        # a TLS-terminating proxy on this machine says so, and the cookie is Secure then
        proxied = plain_post_login(running.port, {"X-Forwarded-Proto": "https"})
        assert proxied.status == 303
        assert "secure" in (proxied.getheader("set-cookie") or "").lower()
        direct = plain_post_login(running.port, {})
        assert direct.status == 303
        assert "secure" not in (direct.getheader("set-cookie") or "").lower()
    out = running.log()
    assert "warning: serving plain HTTP on 0.0.0.0 (--insecure-http)" in out
    assert f"at http://0.0.0.0:{running.port}/" in out
    assert "open the proxy's https:// address" in out


def test_insecure_http_does_not_replace_the_token(tmp_path: Path) -> None:
    code, out = run_serve(tmp_path, "--host", "0.0.0.0", "--insecure-http")
    assert code == 2, out
    assert "refusing to listen on 0.0.0.0 without a token" in out


def test_https_beyond_loopback_needs_no_flag(certs: tuple[Pair, Pair], tmp_path: Path) -> None:
    fleet, _ = certs
    args = ("--tls-cert", str(fleet.cert), "--tls-key", str(fleet.key))
    with serve(tmp_path, *args, host="0.0.0.0", ready=trusting(fleet.cert)) as running:
        assert running.alive()
    out = running.log()
    assert f"at https://0.0.0.0:{running.port}/" in out and "warning" not in out


def test_insecure_http_with_a_certificate_is_a_contradiction(
    certs: tuple[Pair, Pair], tmp_path: Path
) -> None:
    fleet, _ = certs
    args = ["--tls-cert", str(fleet.cert), "--tls-key", str(fleet.key), "--insecure-http"]
    result = CliRunner().invoke(
        app,
        ["serve", "--db", f"sqlite:///{tmp_path / 'f.db'}", *args],
        env={"AGENTFLEET_TOKEN": TOKEN},
    )
    assert result.exit_code == 2
    assert "--insecure-http contradicts --tls-cert/--tls-key" in " ".join(result.output.split())


def test_loopback_stays_plain_http_by_default(tmp_path: Path) -> None:
    with serve(tmp_path) as running:
        assert running.alive()
    out = running.log()
    assert f"at http://127.0.0.1:{running.port}/" in out and "warning" not in out


def test_nothing_claims_to_serve_when_the_port_is_taken(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        code, out = run_serve(tmp_path, "--port", str(port), env={"AGENTFLEET_TOKEN": TOKEN})
    assert code == 3, out
    assert "address already in use" in out.lower()
    assert "is serving" not in out and "start_completed" not in out

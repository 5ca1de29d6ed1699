"""deploy/nginx/alerts.conf passes Debian's `nginx -t`, and its proxy snippet
deploy/nginx/alerts-proxy.conf in front of `alerts run`, with Debian's nginx on loopback
and `web.trusted_proxies = ["127.0.0.1"]` (the address nginx connects from): the sign-in
throttle counts the client nginx saw, whatever that client wrote in its own X-Forwarded-For,
and an X-Forwarded-For sent straight to the app by anyone else is ignored.

Clients are told apart by their loopback source address (127.0.0.2, .3, .4): Linux routes
all of 127.0.0.0/8 to the loopback interface."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session, sessionmaker

from alerts.accounts.signin import ADDRESS_LIMIT
from alerts.accounts.users import Role, add_user
from alerts.core.config import Settings
from tests.accounts.test_client_address import OFFICER, PASSWORD, sign_in
from tests.factories import make_ward
from tests.processes import AlertsProcess, free_port, healthz, start_alerts, wait_for

SNIPPET = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "alerts-proxy.conf"
SITE = SNIPPET.with_name("alerts.conf")


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    assert found, "nginx is missing: .ci/run installs Debian's nginx-light"
    return found


@contextmanager
def nginx(tmp: Path, port: int, upstream: int) -> Iterator[str]:
    """nginx on 127.0.0.1:`port` serving the deploy snippet, with upstream `alerts` at
    127.0.0.1:`upstream`; yields its address."""
    prefix = tmp / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"pid {prefix}/nginx.pid;\ndaemon off;\nworker_processes 1;\n"
        "events { worker_connections 64; }\n"
        "http {\n  access_log off;\n"
        f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
        f"  upstream alerts {{ server 127.0.0.1:{upstream}; keepalive 4; }}\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    include {SNIPPET};\n  }}\n}}\n",
        encoding="utf-8")
    log = prefix / "error.log"
    process = subprocess.Popen([nginx_binary(), "-p", str(prefix), "-c", str(conf),
                                "-e", str(log)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or healthz(address),
                 what="nginx", timeout=30)
        assert process.poll() is None, log.read_text()
        yield address
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def service(tmp: Path, settings: Settings, port: int) -> Iterator[AlertsProcess]:
    config = tmp / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n'
        f'[mail]\ntransport = "maildir"\nmaildir = "{tmp / "outbox"}"\n'
        f'[inbound]\nheld_dir = "{tmp / "held"}"\n'
        f'[web]\nsecret_key = "proxy-tests-secret"\nhost = "127.0.0.1"\nport = {port}\n'
        f'base_url = "https://alerts.example.org"\ntrusted_proxies = ["127.0.0.1"]\n',
        encoding="utf-8")
    process = start_alerts(config, "run", log=tmp / "run.log")
    try:
        wait_for(lambda: healthz(f"http://127.0.0.1:{port}"), what="/healthz", timeout=30,
                 process=process)
        yield process
    finally:
        process.stop()


def client_at(source: str, base_url: str) -> httpx.Client:
    """A client connecting from loopback address `source`."""
    return httpx.Client(base_url=base_url, timeout=30,
                        transport=httpx.HTTPTransport(local_address=source))


@pytest.fixture
def officer(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        make_ward(session, "RIV")
        add_user(session, OFFICER, Role.OFFICER, ward_codes=["RIV"], password=PASSWORD)


@pytest.mark.usefixtures("officer")
def test_behind_nginx_the_throttle_counts_the_client_and_ignores_forged_headers(
        tmp_path: Path, settings: Settings) -> None:
    app_port, proxy_port = free_port(), free_port()
    app = f"http://127.0.0.1:{app_port}"
    with service(tmp_path, settings, app_port), \
            nginx(tmp_path, proxy_port, app_port) as proxy:
        # Through nginx, a client naming a new "client" on every wrong try is still itself.
        with client_at("127.0.0.2", proxy) as guesser:
            for n in range(ADDRESS_LIMIT):
                assert sign_in(guesser, f"guess{n}@police.example", "wrong",
                               forwarded_for=f"203.0.113.{n}") == 400
            assert sign_in(guesser, OFFICER, PASSWORD, forwarded_for="198.51.100.7") == 429
        # Another client behind the same nginx is not locked out (nginx's own address is
        # not what is counted), even one that names the locked address in its header.
        with client_at("127.0.0.3", proxy) as neighbour:
            assert sign_in(neighbour, OFFICER, PASSWORD, forwarded_for="127.0.0.2") == 303
        # Straight to the app, not through nginx: X-Forwarded-For is not believed, so the
        # address it names is not locked out and the sender is.
        with client_at("127.0.0.4", app) as direct:
            for n in range(ADDRESS_LIMIT):
                assert sign_in(direct, f"other{n}@police.example", "wrong",
                               forwarded_for="127.0.0.5") == 400
            assert sign_in(direct, OFFICER, PASSWORD, forwarded_for="127.0.0.5") == 429
        with client_at("127.0.0.5", proxy) as named:
            assert sign_in(named, OFFICER, PASSWORD, forwarded_for="127.0.0.5") == 303


def self_signed(directory: Path) -> None:
    """fullchain.pem and privkey.pem for alerts.example.org, as the site expects them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alerts.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    (directory / "fullchain.pem").write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def test_the_site_example_is_valid_for_debians_nginx(tmp_path: Path) -> None:
    self_signed(tmp_path)
    site = SITE.read_text(encoding="utf-8").replace("/etc/nginx/tls", str(tmp_path)).replace(
        "/etc/nginx/snippets/alerts-proxy.conf", str(SNIPPET))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\n"
                    f"http {{ include {tmp_path}/site.conf; }}\n", encoding="utf-8")
    result = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf),
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr

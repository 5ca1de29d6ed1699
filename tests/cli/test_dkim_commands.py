"""`alerts dkim keygen` writes a private key only its owner can read, never over a file, and
prints the TXT record that publishes the same key; a demo given a key that is not one stops
with one line naming it."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def alerts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True,
                          text=True)


def printed(stdout: str, field: str) -> list[str]:
    return [line.strip().removeprefix(f"{field}:").strip() for line in stdout.splitlines()
            if line.strip().startswith(f"{field}:")]


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_keygen_writes_a_2048_bit_key_readable_by_its_owner_and_prints_its_record(
        tmp_path: Path) -> None:
    out = tmp_path / "keys" / "alerts.pem"
    out.parent.mkdir()
    done = alerts("dkim", "keygen", "--domain", "alerts.example.org", "--selector", "s2026",
                  "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert printed(done.stdout, "name") == ["s2026._domainkey.alerts.example.org"]
    [value] = printed(done.stdout, "value")
    assert value.startswith("v=DKIM1; k=rsa; p=")
    assert base64.b64decode(value.split("p=", 1)[1]) == public_der(key)
    # The zone-file form splits the value into strings of at most 255 characters.
    [zone] = printed(done.stdout, "zone file")
    strings = zone.split('"')[1::2]
    assert "".join(strings) == value and max(map(len, strings)) <= 255
    assert f'private_key_file = "{out}"' in done.stdout


def test_keygen_never_overwrites_a_file(tmp_path: Path) -> None:
    out = tmp_path / "alerts.pem"
    out.write_text("precious\n")
    done = alerts("dkim", "keygen", "--domain", "alerts.example.org", "--selector", "s2026",
                  "--out", str(out))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"Error: {out} exists; a DKIM key is never overwritten "
                                   "(choose another --out)")
    assert out.read_text() == "precious\n"


def test_keygen_adds_an_ed25519_key_and_its_record_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "alerts.pem"
    done = alerts("dkim", "keygen", "--domain", "alerts.example.org", "--selector", "s2026",
                  "--out", str(out), "--ed25519", "ed2026")
    assert done.returncode == 0, done.stderr
    second = tmp_path / "alerts.pem.ed25519"
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(second.read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    assert printed(done.stdout, "name")[1] == "ed2026._domainkey.alerts.example.org"
    assert printed(done.stdout, "value")[1] == \
        f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def test_a_demo_given_a_file_that_is_not_a_key_stops_with_one_line(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    key.write_text("hello\n")
    done = alerts("demo", "--dir", str(tmp_path / "demo"), "--dkim-key", str(key))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"Error: dkim.private_key_file: {key} is not an unencrypted "
                                   "private key in PEM")
    assert not (tmp_path / "demo").exists()  # stopped before it wrote anything


def test_the_worker_will_not_start_on_a_key_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key.pem"
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "alerts.db"}"\n'
        f'[mail]\ntransport = "maildir"\nmaildir = "{tmp_path / "outbox"}"\n'
        '[web]\nsecret_key = "a-long-random-secret-for-this-test"\n'
        'base_url = "https://alerts.example.org"\n'
        f'[dkim]\ndomain = "alerts.example.org"\nselector = "s2026"\n'
        f'private_key_file = "{missing}"\n')
    done = subprocess.run([sys.executable, "-m", "alerts.cli", "--config", str(config),
                           "worker"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"Error: dkim.private_key_file: cannot read {missing} "
                                   "(No such file or directory)")

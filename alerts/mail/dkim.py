"""DKIM signatures (RFC 6376; a second Ed25519 one, RFC 8463, when configured) on the bytes of
a message as it leaves, and the keys they are made with.

`load_signer` takes the `[dkim]` keys at the start of a pass (a missing or unreadable key is
a ConfigError naming its key, then, not per message; each file is parsed once a process);
`Signer.sign` is pure: it prepends one DKIM-Signature header per key, relaxed/relaxed,
covering the headers of SIGNED_HEADERS that the message has, From once more than it has
(so that no From can be added). dkimpy does the parsing, canonicalisation, header
selection and folding, and verifies in the tests; the key operation is cryptography's, on
the key loaded once (dkimpy's own `sign` parses the PEM and computes RSA in pure Python for
every message, several times slower).

Canonicalising a 50 KB digest's body with dkimpy's regular expressions took more than the RSA
signature itself, and so did dkimpy's parse, which splits the body into lines too. The
copies of one message differ in a few lines only (their own links), so `_relaxed_body`
applies dkimpy's relaxed rules line by line and remembers each line's result (a bounded
cache), and `_parse` hands dkimpy the header block alone when every line ends in CRLF, as
every message built here does. The result is dkimpy's, byte for byte (the tests compare).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import (
    CanonicalizationPolicy,
    compress_whitespace,
    correct_empty_body,
    strip_trailing_lines,
    strip_trailing_whitespace,
)

from alerts.core.config import ConfigError, DkimSettings

# Those a message has are signed; Feedback-ID too (Gmail's feedback loop wants it signed),
# and RFC 6376's In-Reply-To and References on answers.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to",
                  b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version",
                  b"content-type", b"feedback-id", b"in-reply-to", b"references")
RSA_BITS = 2048
_NAMELEN = len(b"DKIM-Signature")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class _Key:
    selector: bytes
    key: PrivateKey

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else b"ed25519-sha256"

    def sign(self, digest: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the headers


@dataclass(frozen=True)
class Signer:
    """Signs for `domain` with each key (RSA first)."""

    domain: bytes
    keys: tuple[_Key, ...]

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header per key prepended."""
        return self.signatures(data) + data

    def signatures(self, data: bytes) -> bytes:
        """The DKIM-Signature header lines `sign` prepends to `data` (what a signing process
        sends back: a few hundred bytes rather than the message)."""
        headers, body = _parse(data)
        present = [name.lower() for name, _ in headers]
        include = [name for name in SIGNED_HEADERS for _ in range(present.count(name))]
        include.append(b"from")  # over-signed: a From added on the way breaks the signature
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        canonical = _RELAXED.canonicalize_headers(headers)
        now = str(int(time.time())).encode("ascii")
        return b"".join(self._header(key, canonical, include, body_hash, now)
                        for key in self.keys)

    def _header(self, key: _Key, canonical: list[tuple[bytes, bytes]], include: list[bytes],
                body_hash: bytes, now: bytes) -> bytes:
        fields = [(b"v", b"1"), (b"a", key.algorithm), (b"c", b"relaxed/relaxed"),
                  (b"d", self.domain), (b"s", key.selector), (b"t", now),
                  (b"h", b" : ".join(include)), (b"bh", body_hash)]
        # As dkimpy's own signing does: b= holds a placeholder while folding, so that the
        # signature folds onto lines of its own, then is emptied for the hash.
        unsigned = dkim.fold(_joined([*fields, (b"b", b"0" * 60)]), namelen=_NAMELEN)
        unsigned = dkim.RE_BTAG.sub(b"\\1", unsigned)
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, _RELAXED, canonical, include,
                          (b"DKIM-Signature", b" " + unsigned), {})
        signature = base64.b64encode(key.sign(hasher.digest()))
        value = dkim.fold(_joined([*fields, (b"b", signature)]) + b"\r\n", namelen=_NAMELEN)
        header: bytes = b"DKIM-Signature: " + value
        return header


def _joined(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(b"=".join(field) for field in fields)


def _parse(data: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's `rfc822_parse` of `data`: (headers, body). When every line ends in CRLF its
    body is the bytes after the first empty line as they are, so only the header block is
    given to dkimpy; anything else (a bare LF, no body) goes to dkimpy whole."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or data.startswith(b"\r\n") or data.count(b"\n") != data.count(b"\r\n"):
        parsed: tuple[list[list[bytes]], bytes] = dkim.rfc822_parse(data)
        return parsed
    headers: list[list[bytes]] = dkim.rfc822_parse(data[:end + 4])[0]
    return headers, data[end + 4:]


_CACHED_LINES = 20_000  # about 3 MB; a county's round has about 100 digests of 700 lines
_relaxed_lines: dict[bytes, bytes] = {}


def _relaxed_line(line: bytes) -> bytes:
    """One body line (without its CRLF) as dkimpy's relaxed rules leave it. Those rules
    change only a tab, a run of spaces or a space at the line's end; most lines (a vote
    link, say) have none of these and are left as they are without a regular expression."""
    if b"\t" in line or b"  " in line or line.endswith(b" "):
        changed: bytes = compress_whitespace(strip_trailing_whitespace(line + b"\r\n"))[:-2]
        return changed
    return line


def _relaxed_body(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalisation (`Relaxed.canonicalize_body`), line by line:
    its trailing-space and space-run rules never cross a line end, and the rules for the
    body's end (empty lines, an empty body) apply to the whole as dkimpy applies them."""
    lines = body.split(b"\r\n")
    last = compress_whitespace(strip_trailing_whitespace(lines.pop()))
    done: list[bytes | None] = list(map(_relaxed_lines.get, lines))
    # Most lines are known (a copy's own links are the few that are not): find the others
    # with list.index, in C, rather than by a loop over every line or a set of them.
    if None in done and len(_relaxed_lines) + done.count(None) > _CACHED_LINES:
        _relaxed_lines.clear()
    at = -1
    with contextlib.suppress(ValueError):
        while True:
            at = done.index(None, at + 1)
            line = lines[at]
            done[at] = _relaxed_lines[line] = _relaxed_line(line)
    canonical = b"\r\n".join([*done, last])  # type: ignore[list-item]
    result: bytes = correct_empty_body(strip_trailing_lines(canonical))
    return result


def load_signer(settings: DkimSettings) -> Signer | None:
    """The signer `[dkim]` describes, or None when signing is off (domain, selector or
    private_key_file unset). Raises ConfigError naming the key whose file is unusable."""
    if not (settings.domain and settings.selector and settings.private_key_file):
        return None
    keys = [_Key(settings.selector.encode("ascii"),
                 read_key(settings.private_key_file, "dkim.private_key_file", rsa_only=True))]
    if settings.ed25519_selector and settings.ed25519_private_key_file:
        keys.append(_Key(settings.ed25519_selector.encode("ascii"),
                         read_key(settings.ed25519_private_key_file,
                                  "dkim.ed25519_private_key_file")))
    return Signer(settings.domain.encode("ascii"), tuple(keys))


def read_key(file: str, name: str, *, rsa_only: bool = False) -> PrivateKey:
    """A private key from a PEM file (RSA, or Ed25519), or an Ed25519 seed in base64 (what
    dkimpy's `dknewkey --ktype ed25519` writes). Loading an RSA key checks it, which takes
    a tenth of a second: a process loads each file once, again only when it changes (a key
    replaced in place is used from the next pass)."""
    try:
        found = os.stat(file)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {file} ({exc.strerror})") from None
    return _load_key(file, name, rsa_only, found.st_mtime_ns, found.st_size, found.st_ino)


@functools.lru_cache(maxsize=8)
def _load_key(file: str, name: str, rsa_only: bool, *_version: int) -> PrivateKey:
    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {file} ({exc.strerror})") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(
                base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{name}: {file} is not an unencrypted private key in PEM") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ConfigError(f"{name}: {file} is a {key.key_size}-bit RSA key; receivers "
                              f"want at least 1024 bits ({RSA_BITS} recommended)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey) and not rsa_only:
        return key
    wanted = "an RSA" if rsa_only else "an RSA or Ed25519"
    raise ConfigError(f"{name}: {file} is not {wanted} private key")


def dns_record(key: PrivateKey) -> str:
    """The TXT record that publishes `key`'s public half."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def new_key(*, ed25519_key: bool = False) -> PrivateKey:
    """A fresh key: RSA of RSA_BITS, or Ed25519."""
    if ed25519_key:
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def write_key(key: PrivateKey, file: Path) -> None:
    """Write `key` as PEM, readable by its owner only; an existing file is never replaced."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(file, "xb", opener=lambda path, flags: os.open(path, flags, 0o600)) as out:
        out.write(pem)

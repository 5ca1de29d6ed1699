"""A throw-away Dovecot IMAP server for the tests: Debian's /usr/sbin/dovecot (package
dovecot-imapd) run in the foreground from a configuration written into a temporary folder,
plain IMAP on a free loopback port, one user from a passwd-file, mail in a Maildir, its log in
the same folder; the master process is stopped and the folder removed at the end.

As root, Dovecot runs its helper processes as the `dovecot` and `dovenull` users that the
package creates and the mail processes as `nobody` (Dovecot will not open mail as root). As an
ordinary user, every process runs as that user and nothing is chrooted (chroot needs root).

`dovecot` is the session fixture; tests/conftest.py exports it. Each test that shares the
server starts from an empty account with `Dovecot.reset()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from alerts.core.config import InboundSettings

DOVECOT = Path("/usr/sbin/dovecot")
INSTALL_HINT = (
    "install Debian's IMAP server (`apt-get install dovecot-imapd`; .ci/run does this "
    "and stops the system Dovecot it starts)"
)
USERNAME = "team-inbox"
PASSWORD = "loopback-only-password"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0


class DovecotUnavailable(Exception):
    """No Dovecot can be started here; the message says what to install or what failed."""


@dataclass
class Dovecot:
    """A running server: where it listens, its one account, and helpers to fill and read it."""

    host: str
    port: int
    username: str
    password: str
    log: Path

    def settings(self, **overrides: Any) -> InboundSettings:
        """Inbound settings that poll this server over plain IMAP."""
        base = InboundSettings(imap_host=self.host, imap_port=self.port, imap_ssl=False,
                               imap_username=self.username, imap_password=self.password)
        return dataclasses.replace(base, **overrides)

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        with IMAPClient(self.host, self.port, ssl=False, timeout=10) as client:
            client.login(self.username, self.password)
            yield client

    def append(self, folder: str, *messages: bytes) -> None:
        """Append raw messages to `folder` (created when missing), in the order given."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for message in messages:
                client.append(folder, message)

    def count(self, folder: str) -> int:
        """How many messages `folder` holds; 0 when it does not exist."""
        with self.client() as client:
            if not client.folder_exists(folder):
                return 0
            status = client.folder_status(folder, [b"MESSAGES"])
            return int(status[b"MESSAGES"])

    def exists(self, folder: str) -> bool:
        with self.client() as client:
            return bool(client.folder_exists(folder))

    def messages(self, folder: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """Each message in `folder`, oldest first: its raw bytes and its flags (read with
        BODY.PEEK, so reading changes nothing)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search(["ALL"]))
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"])
            return [(fetched[uid][b"BODY[]"], tuple(fetched[uid][b"FLAGS"])) for uid in uids]

    def sessions(self, timeout: float = 5.0) -> list[str]:
        """How each IMAP session so far ended, oldest first ("Logged out ...", "Connection
        closed ..."), from the log once every login in it has its end line (Dovecot's log
        process writes them a moment after the client has gone)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log.read_text(errors="replace")
            ends = re.findall(r"^.* imap\(.*?: Info: Disconnected: (.*)$", text, re.MULTILINE)
            if len(ends) >= text.count(": Info: Login: ") or time.monotonic() > deadline:
                return ends
            time.sleep(0.02)

    def reset(self) -> None:
        """Empty INBOX and delete every other folder, so a test starts from a new account."""
        with self.client() as client:
            names = [name for _flags, _delimiter, name in client.list_folders()]
            # Children before their parents; a parent that only holds children
            # (\NonExistent) goes away with the last of them.
            for name in sorted(names, key=len, reverse=True):
                if name.upper() != "INBOX" and client.folder_exists(name):
                    client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()


@dataclass(frozen=True)
class _Users:
    """Who runs what: Dovecot's helpers, its login processes, and the mail processes."""

    internal_user: str
    internal_group: str
    login_user: str
    mail_uid: int
    mail_gid: int
    root: bool

    @classmethod
    def here(cls) -> _Users:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid())
            group = grp.getgrgid(os.getegid()).gr_name
            return cls(me.pw_name, group, me.pw_name, me.pw_uid, os.getegid(), root=False)
        try:
            internal, login = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
            mail = pwd.getpwnam("nobody")
        except KeyError as error:
            raise DovecotUnavailable(f"running as root needs the system user {error}, which "
                                     f"Debian's Dovecot package creates: {INSTALL_HINT}") from None
        return cls(internal.pw_name, grp.getgrgid(internal.pw_gid).gr_name, login.pw_name,
                   mail.pw_uid, mail.pw_gid, root=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _config(folder: Path, port: int, users: _Users) -> str:
    # Chroot needs root; as an ordinary user every chrooted service runs in place.
    no_chroot = "" if users.root else "\n".join(
        f"service {name} {{\n  chroot =\n}}"
        for name in ("anvil", "ipc", "old-stats", "imap-login", "aggregator"))
    return f"""\
# Written by tests/imap.py for one test run; deleted with its folder.
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = alerts-tests-{port}
log_path = {folder}/dovecot.log
protocols = imap
listen = {HOST}
ssl = no
# Plain IMAP on loopback only, so cleartext passwords are acceptable here.
disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once, not after Dovecot's usual 2 s delay.
auth_failure_delay = 0
default_internal_user = {users.internal_user}
default_internal_group = {users.internal_group}
default_login_user = {users.login_user}
mail_uid = {users.mail_uid}
mail_gid = {users.mail_gid}
first_valid_uid = {users.mail_uid}
first_valid_gid = {users.mail_gid}
mail_location = maildir:{folder}/mail/%u
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {folder}/users
}}
userdb {{
  driver = static
  args = home={folder}/mail/%u
}}
# Without the auth penalty socket there is no auth penalty, which would otherwise hold up
# every login for seconds after a test's wrong password.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{no_chroot}
"""


def _log(folder: Path) -> str:
    parts = []
    for name in ("dovecot.log", "master.out"):
        path = folder / name
        if path.exists() and path.stat().st_size:
            parts.append(f"--- {path} ---\n" + path.read_text(errors="replace").strip())
    return "\n".join(parts) or "(Dovecot wrote no log)"


def _answers(port: int) -> bool:
    """True once the server greets an IMAP client on `port`."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as connection:
            return connection.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # The master stops its children on SIGTERM; -F kept it in the foreground as our child.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def dovecot_server() -> Iterator[Dovecot]:
    """Start a throw-away Dovecot and yield it; stop it and delete its files at the end."""
    if not os.access(DOVECOT, os.X_OK):
        raise DovecotUnavailable(f"{DOVECOT} is missing: {INSTALL_HINT}")
    users = _Users.here()
    folder = Path(tempfile.mkdtemp(prefix="alerts-dovecot-"))
    try:
        # Dovecot's unprivileged processes must reach their sockets and the mail under here.
        folder.chmod(0o755)
        (folder / "users").write_text(f"{USERNAME}:{{PLAIN}}{PASSWORD}::::::\n")
        (folder / "mail").mkdir()
        if users.root:
            os.chown(folder / "mail", users.mail_uid, users.mail_gid)
        attempts = 3  # a free port can be taken by someone else before Dovecot binds it
        for attempt in range(1, attempts + 1):
            port = free_port()
            config = folder / "dovecot.conf"
            config.write_text(_config(folder, port, users))
            process = _start(config, folder)
            try:
                if _wait(process, port):
                    yield Dovecot(HOST, port, USERNAME, PASSWORD, folder / "dovecot.log")
                    return
                status = process.poll()
            finally:
                _stop(process)
            log = _log(folder)
            if attempt == attempts or "Address already in use" not in log:
                what = (f"did not answer on {HOST}:{port} within {START_TIMEOUT:.0f}s"
                        if status is None else f"exited with status {status} before answering")
                raise DovecotUnavailable(f"{DOVECOT} -F -c {config} {what}:\n{log}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(config: Path, folder: Path) -> subprocess.Popen[bytes]:
    with (folder / "master.out").open("ab") as output:
        return subprocess.Popen([str(DOVECOT), "-F", "-c", str(config)], stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT)


def _wait(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if _answers(port):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The run's Dovecot, started when the first IMAP test needs it."""
    with contextlib.ExitStack() as stack:
        yield _start_server(stack)


def _start_server(stack: contextlib.ExitStack) -> Dovecot:
    try:
        return stack.enter_context(dovecot_server())
    except DovecotUnavailable as error:
        reason = str(error)
    # Outside the except block, so that the report is this one line and not a chain.
    pytest.fail(f"the IMAP tests cannot run: {reason}", pytrace=False)

"""A throw-away PostgreSQL cluster for the tests: `initdb` in a temporary folder, a server on
a free loopback port, one fresh database per test, everything removed at the end.

The server binaries come from PATH or from Debian's /usr/lib/postgresql/<version>/bin (the
newest). `initdb` refuses to run as root, so as root the server runs as the `postgres`
system user that Debian's package creates.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "alerts"
SYSTEM_USER = "postgres"
DEBIAN_BIN = Path("/usr/lib/postgresql")
INSTALL_HINT = (
    "install the server (Debian: `apt-get install postgresql`; .ci/run does this), "
    "or set ALERTS_TEST_STORES=sqlite to test on SQLite only"
)
# Durability is worthless for a cluster that is deleted after the run, and costs time.
SERVER_OPTIONS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off",
                  "max_connections=200", "log_min_messages=warning")


class PostgresUnavailable(Exception):
    """No PostgreSQL cluster can be started here; the message says what to install or do."""


def find_binaries() -> Path:
    """The folder holding `initdb` and `pg_ctl`: from PATH, else Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        folder = Path(initdb).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name))

    candidates = [folder for folder in DEBIAN_BIN.glob("*/bin")
                  if (folder / "initdb").exists() and (folder / "pg_ctl").exists()]
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in {DEBIAN_BIN}/*/bin: "
            + INSTALL_HINT
        )
    return max(candidates, key=version)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running server: where it listens, and fresh databases on demand; it can be stopped
    and started again on the same port (a test of an outage uses a cluster of its own)."""

    host: str
    port: int
    user: str = SUPERUSER
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _server: _Server | None = None

    def stop(self) -> None:
        """Stop the server as an operator would (`pg_ctl stop --mode fast`: sessions end)."""
        assert self._server is not None
        self._server.control("stop", "--mode", "fast")

    def start(self) -> None:
        """Start the stopped server again on the same port; return once it takes connections."""
        assert self._server is not None
        self._server.control("start", "--log", self._server.log, "--options",
                             self._server.options)
        _wait_for_connections(self, self._server.log)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname="postgres", autocommit=True)

    def create_database(self, template: str = "template0") -> str:
        """A new database, a copy of `template` (empty by default); returns its name."""
        name = f"test_{next(self._names)}"
        with self._admin() as admin:
            # FILE_COPY copies the template's files as they are; WAL_LOG (the default) would
            # write them all through the WAL, which is slower for many small databases.
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY")
                          .format(sql.Identifier(name), sql.Identifier(template)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending any connection a test or its processes left open."""
        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


class _Runner:
    """Runs the server's commands as this user, or as `postgres` when this user is root."""

    def __init__(self) -> None:
        self.prefix: list[str] = []
        self.owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"initdb refuses to run as root and there is no {SYSTEM_USER!r} system user "
                    f"to run it as: {INSTALL_HINT}, or run the tests as an ordinary user"
                ) from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root needs `runuser` (util-linux) to "
                                          f"start PostgreSQL as {SYSTEM_USER!r}")
            self.prefix = [runuser, "-u", SYSTEM_USER, "--"]

    def own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def run(self, *command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *map(str, command)], capture_output=True,
                              text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"})


@dataclass(frozen=True)
class _Server:
    binaries: Path
    runner: _Runner
    data: Path
    log: Path
    options: str

    def control(self, action: str, *options: str | Path) -> None:
        result = self.runner.run(self.binaries / "pg_ctl", action, "--pgdata", self.data,
                                 "--wait", "--timeout", "60", *options, timeout=90)
        if result.returncode != 0:
            raise PostgresUnavailable(_failed(f"pg_ctl {action}", result, self.log))


def _failed(what: str, result: subprocess.CompletedProcess[str], log: Path | None = None) -> str:
    detail = (result.stderr or result.stdout).strip()
    if log is not None and log.exists():
        detail += "\n" + log.read_text(errors="replace").strip()
    return f"{what} failed (exit {result.returncode}):\n{detail}"


@contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """Start a throw-away cluster and yield it; stop it and delete its files at the end."""
    binaries = find_binaries()
    runner = _Runner()
    folder = Path(tempfile.mkdtemp(prefix="alerts-postgres-"))
    data, log = folder / "data", folder / "server.log"
    try:
        runner.own(folder)
        result = runner.run(binaries / "initdb", "--pgdata", data, "--username", SUPERUSER,
                            "--auth", "trust", "--encoding", "UTF8", "--locale", "C",
                            "--no-sync")
        if result.returncode != 0:
            raise PostgresUnavailable(_failed(f"{binaries / 'initdb'}", result))
        try:
            yield _start(binaries, runner, data, folder, log)
        finally:
            # Also after a failed start: `pg_ctl start --wait` may time out on a server
            # that is running all the same.
            runner.run(binaries / "pg_ctl", "stop", "--pgdata", data, "--mode", "fast",
                       "--wait", timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(binaries: Path, runner: _Runner, data: Path, sockets: Path, log: Path) -> Cluster:
    attempts = 3  # a free port can be taken by someone else before the server binds it
    for attempt in range(1, attempts + 1):
        port = free_port()
        options = " ".join([f"-h 127.0.0.1 -p {port} -k {sockets}",
                            *(f"-c {option}" for option in SERVER_OPTIONS)])
        result = runner.run(binaries / "pg_ctl", "start", "--pgdata", data, "--log", log,
                            "--wait", "--timeout", "60", "--options", options, timeout=90)
        if result.returncode == 0:
            cluster = Cluster("127.0.0.1", port,
                              _server=_Server(binaries, runner, data, log, options))
            _wait_for_connections(cluster, log)
            return cluster
        if attempt == attempts or "could not bind" not in log.read_text(errors="replace"):
            raise PostgresUnavailable(_failed(f"{binaries / 'pg_ctl'} start", result, log))
    raise AssertionError("unreachable")


def _wait_for_connections(cluster: Cluster, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with cluster._admin():
                return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(
                    f"PostgreSQL on port {cluster.port} accepts no connections: {error}\n"
                    + log.read_text(errors="replace")
                ) from error
            time.sleep(0.1)

"""The throw-away PostgreSQL cluster behind the `[postgresql]` tests: where its binaries come
from, and that it says what to install when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests import postgres as harness
from tests.postgres import Cluster, PostgresUnavailable, find_binaries


def fake_server(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder


def test_the_newest_debian_version_is_used_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("9.6", "13", "15"):
        fake_server(tmp_path / version / "bin")
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a client-only install: no server
    monkeypatch.setattr(harness, "DEBIAN_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_binaries() == tmp_path / "15" / "bin"


def test_binaries_on_path_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_server(tmp_path / "debian" / "15" / "bin")
    own = fake_server(tmp_path / "own")
    monkeypatch.setattr(harness, "DEBIAN_BIN", tmp_path / "debian")
    monkeypatch.setenv("PATH", str(own))
    assert find_binaries() == own


def test_without_a_server_the_message_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "DEBIAN_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresUnavailable, match=r"apt-get install postgresql.*"
                                                  r"ALERTS_TEST_STORES=sqlite"):
        find_binaries()


@pytest.mark.stores("postgresql")
def test_each_test_has_a_database_of_its_own_and_a_dropped_one_is_gone(
    postgres: Cluster, database_url: str
) -> None:
    other = postgres.create_database()
    assert postgres.url(other) != database_url
    postgres.drop_database(other)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            names = set(connection.scalars(text("SELECT datname FROM pg_database")))
    finally:
        engine.dispose()
    assert database_url.rpartition("/")[2] in names and other not in names

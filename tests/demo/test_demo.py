"""`alerts demo`: the README's first command, end to end, on embedded defaults."""

from __future__ import annotations

import re
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from alerts.accounts.users import find_user, verify_password
from alerts.delivery.outbox import Delivery
from alerts.demo.runner import run_demo
from subscriptions.links import Purpose, verify_reference
from tests.processes import environment, free_port

HEADERS = ("Message-ID", "Date", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
           "Auto-Submitted", "Reply-To", "Return-Path", "From", "To", "Subject")


def secret_of(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("secret_key"):
            return line.split('"')[1]
    raise AssertionError("no secret_key in the demo config")


def test_the_demo_leaves_complete_digests_in_a_maildir(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    outbox = report.outbox
    assert {p.name for p in outbox.iterdir()} >= {"new", "cur", "tmp"}
    # Everything but the replies forwarded to the ward teams' addresses went to residents.
    files = [path for path in sorted((outbox / "new").iterdir())
             if b"@police.example" not in path.read_bytes().split(b"\nTo: ", 1)[1][:80]]
    assert len(files) >= 3
    secret = secret_of(report.config)
    engine = create_engine(f"sqlite:///{report.folder / 'alerts.db'}")
    with sessionmaker(engine)() as session:
        deliveries = {ident: nonce for ident, nonce
                      in session.execute(select(Delivery.id, Delivery.nonce))}
    engine.dispose()
    wards = set()
    for file in files:
        message = message_from_bytes(file.read_bytes(), policy=policy.default)
        assert message.get_content_type() == "multipart/alternative"
        for header in HEADERS:
            assert message[header], f"{file.name} lacks {header}"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # Digests and alerts are generated; acknowledgements answer the resident's mail.
        assert message["Auto-Submitted"] in ("auto-generated", "auto-replied")
        # Its links point at the service `alerts run` starts with the demo's config.
        assert "<http://127.0.0.1:8000/unsubscribe/" in message["List-Unsubscribe"]
        assert "<mailto:unsubscribe+" in message["List-Unsubscribe"]
        reply = message["Reply-To"].addresses[0].username
        assert reply.startswith("reply+")
        assert verify_reference(secret, Purpose.REPLY, reply.removeprefix("reply+"),
                                deliveries.get) is not None
        bounce = str(message["Return-Path"]).strip("<>").split("@")[0]
        assert verify_reference(secret, Purpose.BOUNCE, bounce.removeprefix("bounces+"),
                                deliveries.get)
        types = [part.get_content_type() for part in message.walk()]
        assert "text/plain" in types and "text/html" in types
        wards.add(message["List-Id"])
    assert len(wards) == 3
    recipients = {message_from_bytes(f.read_bytes(), policy=policy.default)["To"] for f in files}
    assert not any("not.confirmed.yet" in r or "moved.away" in r for r in recipients)
    assert report.second_round and not any(o.queued for o in report.second_round)


def test_the_demo_can_run_again_in_its_own_folder_but_not_in_a_stranger(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = run_demo(folder, say=lambda _: None)
    again = run_demo(folder, say=lambda _: None)
    assert len(list((again.outbox / "new").iterdir())) == len(
        list((first.outbox / "new").iterdir()))
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"...")
    result = subprocess.run([sys.executable, "-m", "alerts.cli", "demo", "--dir", str(stranger)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "not written by `alerts demo`" in result.stderr
    assert (stranger / "holiday.jpg").exists()


def test_the_demo_residents_write_back_and_their_team_hears(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    kinds = [(outcome.kind, outcome.severity, outcome.flagged) for _, outcome in report.inbound]
    assert kinds == [("reply", None, False), ("reply", None, True), ("auto_reply", None, False),
                     ("bounce", "hard", False)]
    # The bounce came to the digest's own bounces+TOKEN address, so it is believed.
    assert report.inbound[-1][1].action == "suppressed (hard bounce)"
    messages = [message_from_bytes(path.read_bytes(), policy=policy.default)
                for path in (report.outbox / "new").iterdir()]
    forwards = [m for m in messages if m["X-Alerts-Reply-Id"]]
    assert len(forwards) == 2
    assert all(str(m["To"]).endswith(".snt@police.example") for m in forwards)
    assert any("POSSIBLE CRIME REPORT" in str(m["Subject"]) for m in forwards)
    acks = [m for m in messages if m["Auto-Submitted"] == "auto-replied"]
    assert len(acks) == 2  # the out-of-office and the bounce got no answer
    assert report.forwarded is not None and report.forwarded.sent == 2


def test_the_demo_makes_an_officer_and_a_coordinator_who_can_sign_in(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    assert [role for role, _, _ in report.staff] == ["officer", "coordinator"]
    engine = create_engine(f"sqlite:///{report.folder / 'alerts.db'}")
    with sessionmaker(engine)() as session:
        for _, email, password in report.staff:
            assert verify_password(session, find_user(session, email), password)
    engine.dispose()


def test_the_demo_residents_choices_shape_their_digests(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    digests = {}
    for file in (report.outbox / "new").iterdir():
        message = message_from_bytes(file.read_bytes(), policy=policy.default)
        if message["Auto-Submitted"] == "auto-generated" and "Urgent" not in message["Subject"]:
            body = message.get_body(("plain",))
            assert body is not None
            digests[str(message["To"]).split("<")[-1].rstrip(">")] = body.get_content()
    bryn = digests["bryn.jones@home.example"]
    assert "Calls from fake bank staff" in bryn, "Bryn follows scams"
    assert "Sheds broken into" not in bryn, "and not burglary"
    assert "New officer for Market Square" in bryn, "untagged news reaches everyone"
    chloe = digests["chloe.martin@home.example"]
    assert "Sheds broken into" in chloe and "Calls from fake bank staff" in chloe
    assert "NEWYDDION Y TÎM" in chloe and "TEAM UPDATES" not in chloe, "Chloe reads Welsh"
    assert "999" in chloe


def test_the_demo_ends_saying_what_to_type_next_as_it_was_installed(tmp_path: Path) -> None:
    """Its last lines name the installed script (README's `.venv/bin/alerts`, which a fresh
    shell has not on its PATH), its config, the pages of the service and the inbox."""
    script = tmp_path / ".venv" / "bin" / "alerts"
    script.parent.mkdir(parents=True)
    script.symlink_to(Path(sys.executable).with_name("alerts"))
    port = free_port()
    result = subprocess.run([".venv/bin/alerts", "demo", "--dir", "demo-run", "--port", str(port)],
                            cwd=tmp_path, env=environment(), capture_output=True, text=True,
                            timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    base = f"http://127.0.0.1:{port}"
    run = lines.index(".venv/bin/alerts --config demo-run/alerts.toml run")
    after = "\n".join(lines[run:])
    for page in ("/wards/RIV/", "/subscribe", "/staff/sign-in"):
        assert f"{base}{page}" in after
    assert "password" in after and "demo-run/outbox/new/" in lines[-1]
    bare = [line for line in lines if re.search(r"(?<![/\w])alerts --config", line)]
    assert not bare, "a bare `alerts` is not on a fresh shell's PATH"
    config = (tmp_path / "demo-run" / "alerts.toml").read_text()
    assert f'base_url = "{base}"' in config and f"port = {port}" in config


def test_the_demo_sources_are_still_collected_once_the_demo_has_ended(tmp_path: Path) -> None:
    """`alerts run` after the demo collects its sample feeds without an error."""
    report = run_demo(tmp_path / "demo", say=lambda _: None)
    result = subprocess.run([sys.executable, "-m", "alerts.cli", "--config", str(report.config),
                             "collect"], capture_output=True, text=True, env=environment(),
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6 and not any("error" in line or "could not" in line for line in lines)

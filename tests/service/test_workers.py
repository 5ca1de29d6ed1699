"""`web.workers` (`alerts web --workers N`, `alerts run --workers N`) as real processes on
loopback: every child serves the one port, what a page queues is sent once and at once by
the parent's delivery loop, the scheduler stays in the parent, a child that dies is
replaced, and neither SIGTERM nor the parent's sudden death leaves a process behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from alerts.accounts.users import Role, add_user
from alerts.service.webserver import ServiceError, listen
from alerts.service.workers import STARTUP_SECONDS, WebProcesses
from tests.processes import AlertsProcess, healthz, start_alerts, wait_for
from tests.service import test_service
from tests.service.test_service import Service, riverside

# The fixtures of test_service.py: a config on this test's database, SMTP sink and port.
service = test_service.service
sink = test_service.sink

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OFFICER = "pc.bloggs@police.example"
# Seconds for a service and its web processes to answer: each process imports the web stack,
# which takes long on a loaded machine.
START = 60
PIDS = re.compile(r"(\d+) web processes: pids ([\d, ]+)\)")


def start(service: Service, command: str, workers: int) -> AlertsProcess:
    return start_alerts(service.config, command, "--workers", str(workers),
                        log=service.tmp / f"{command}-workers.log")


def child_pids(process: AlertsProcess) -> list[int]:
    """The web processes the parent's start line names."""
    match = wait_for(lambda: PIDS.search(process.output()), what="the start line",
                     timeout=30, process=process)
    return [int(pid) for pid in match[2].split(", ")]


def children_of(pid: int) -> set[int]:
    """Every process whose parent is `pid` (the web processes, multiprocessing's helper)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def outlived(pids: set[int], timeout: float = 5.0) -> None:
    """Fail unless every one of `pids` has ended within `timeout` (multiprocessing's
    helper ends when it sees its parent gone, a moment after it)."""
    wait_for(lambda: not [pid for pid in pids if running(pid)],
             what=f"the end of every child of the service ({sorted(pids)})", timeout=timeout)


@contextmanager
def only(serving: int, pids: list[int]) -> Iterator[None]:
    """Freeze every web process but `serving` (SIGSTOP), so that it alone can accept."""
    frozen = [pid for pid in pids if pid != serving]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


def answers_alone(service: Service, serving: int, pids: list[int]) -> bool:
    with only(serving, pids):
        response = httpx.get(f"{service.base_url}/healthz", timeout=10.0)
    return response.status_code == 200


def test_every_web_process_serves_the_port_and_sigterm_leaves_no_process(
        service: Service) -> None:
    process = start(service, "web", 2)
    try:
        wait_for(lambda: healthz(service.base_url), what="/healthz", timeout=START, process=process)
        pids = child_pids(process)
        assert len(pids) == 2 and process.process.pid not in pids
        for pid in pids:  # each, alone, answers on the one port
            wait_for(lambda pid=pid: answers_alone(service, pid, pids),  # type: ignore[misc]
                     what=f"web process {pid} to answer", timeout=30, process=process)
        spawned = children_of(process.process.pid)
        assert set(pids) <= spawned
    finally:
        status = process.stop()
    assert status == 0, process.output()
    outlived(spawned)
    log = process.output()
    assert log.count("web process: SIGTERM received") == 2
    assert "alerts web: stopped" in log


def test_a_page_served_by_a_web_process_queues_mail_the_parent_sends_once_at_once(
        service: Service) -> None:
    """A password reset asked for in a child wakes the parent's delivery loop (not its poll,
    set to a minute here) and goes out exactly once, whichever child served the form."""
    riverside(service.factory, 1)
    with service.factory.begin() as session:
        add_user(session, OFFICER, Role.OFFICER, ward_codes=["RIV"], password="a long password")
    text = service.config.read_text().replace("outbox_poll_seconds = 0.2",
                                              "outbox_poll_seconds = 60")
    service.config.write_text(text)
    process = start(service, "web", 2)
    try:
        wait_for(lambda: healthz(service.base_url), what="/healthz", timeout=START, process=process)
        time.sleep(0.5)  # the parent's first look at the outbox is over: now it waits a minute
        with httpx.Client(base_url=service.base_url, timeout=10.0) as client:
            form = client.get("/staff/reset")
            token = CSRF.search(form.text)
            assert form.status_code == 200 and token
            response = client.post("/staff/reset",
                                   data={"email": OFFICER, "csrf_token": token[1]})
            assert response.status_code == 200
        wait_for(lambda: len(service.sink.received) >= 1, what="the reset email", timeout=10,
                 process=process)
        time.sleep(1.0)  # nothing else arrives: no second sender
    finally:
        status = process.stop()
    assert status == 0, process.output()
    assert [r.rcpt_tos for r in service.sink.received] == [[OFFICER]]
    assert service.statuses()["sent"] == 1
    assert "@police.example" not in process.output()


def test_run_with_web_processes_keeps_the_scheduler_in_the_parent(service: Service) -> None:
    riverside(service.factory, 1)
    process = start(service, "run", 2)
    try:
        report = wait_for(lambda: healthz(service.base_url), what="/healthz", timeout=START,
                          process=process)
        pids = child_pids(process)
        for pid in pids:  # each child says what the parent's scheduler does
            with only(pid, pids):
                report = httpx.get(f"{service.base_url}/healthz", timeout=10.0).json()
            assert report["status"] == "ok"
            assert report["scheduler"]["running"] is True
            assert report["scheduler"]["role"] == "leader"
            assert "digest:RIV:weekly" in [job["id"] for job in report["scheduler"]["jobs"]]
        spawned = children_of(process.process.pid)
    finally:
        status = process.stop()
    assert status == 0, process.output()
    outlived(spawned)
    assert "alerts run: stopped" in process.output()


def test_a_web_process_that_dies_is_replaced_and_the_parent_s_death_stops_them_all(
        service: Service) -> None:
    process = start(service, "web", 2)
    try:
        wait_for(lambda: healthz(service.base_url), what="/healthz", timeout=START, process=process)
        pids = child_pids(process)
        time.sleep(STARTUP_SECONDS)  # past the start, when a death is a crash to recover from
        os.kill(pids[0], signal.SIGKILL)
        match = wait_for(lambda: re.search(rf"web process {pids[0]} ended \(exit code -9\); "
                                           r"started web process (\d+)", process.output()),
                         what="a replacement", timeout=10, process=process)
        replacement = int(match[1])
        now = [pids[1], replacement]
        wait_for(lambda: answers_alone(service, replacement, now),
                 what="the replacement to answer", timeout=30, process=process)
        spawned = children_of(process.process.pid)
        process.process.kill()  # the parent dies without a word: the children notice
        process.process.wait()
        outlived(spawned, timeout=15)
    finally:
        process.stop()


def dies_at_once(*_args: object) -> None:
    """A web process that cannot start (run in a child: module level, so it pickles)."""
    raise SystemExit(3)


def test_a_web_process_that_dies_as_it_starts_stops_the_service_with_its_exit_code() -> None:
    async def watch_one() -> str:
        sock = listen("127.0.0.1", 0)
        processes = WebProcesses(1, dies_at_once, None, sock)
        processes.start(lambda: None)
        try:
            with pytest.raises(ServiceError) as raised:
                await asyncio.wait_for(processes.watch(), START)
            return str(raised.value)
        finally:
            await processes.stop(asyncio.Event())
            sock.close()

    assert "ended" in (said := asyncio.run(watch_one())) and "exit code 3" in said

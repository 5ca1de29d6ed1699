"""Helpers for tests that run `alerts` as a real process: start it, wait for a condition,
read its /healthz, signal it and collect its exit status and log; and `twice_at_once`, two
threads pressing the same button at the same moment.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers import SinkHandler

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    """This environment without ALERTS_* (the config file alone decides), run from the repo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class AlertsProcess:
    """An `alerts` command running in its own process; its stderr goes to `log`."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the process and return its exit status; kill it if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"alerts did not stop within {timeout} s:\n{self.output()}")\
                from None


def start_alerts(config: Path, *args: str, log: Path) -> AlertsProcess:
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "--config", str(config), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            env=environment(), cwd=config.parent,
        )
    return AlertsProcess(process, log)


def run_alerts(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a one-shot `alerts` command to completion in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "alerts.cli", "--config", str(config), *args],
        capture_output=True, text=True, env=environment(), cwd=config.parent, timeout=60,
        check=False,
    )


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 10.0,
             process: AlertsProcess | None = None, interval: float = 0.05) -> T:
    """Call `check` until it returns something other than None (or False); fail after
    `timeout` seconds, or at once if `process` has exited meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"alerts exited ({process.process.returncode}) while waiting "
                                 f"for {what}:\n{process.output()}")
        if time.monotonic() > deadline:
            log = f":\n{process.output()}" if process is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{log}")
        time.sleep(interval)


def healthz(base_url: str) -> dict[str, Any] | None:
    """The /healthz report, or None while nothing answers."""
    try:
        response = httpx.get(f"{base_url}/healthz", timeout=2.0)
    except httpx.TransportError:
        return None
    report: dict[str, Any] = response.json()
    return report


def slow_down(handler: SinkHandler, seconds: float) -> None:
    """Make the SMTP sink take `seconds` over each message, as a loaded relay would."""
    accept = handler.handle_DATA

    async def handle_DATA(server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(seconds)
        return await accept(server, session, envelope)

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]


def twice_at_once(press: Callable[[], object]) -> None:
    """Run `press` in two threads released at the same moment (a double click, or a link
    scanner beside the resident); an error in either is raised here."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def pressed() -> None:
        try:
            start.wait()
            press()
        except BaseException as error:  # raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=pressed) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []

"""Urgent-alert latency: `alerts post --urgent` in one process, `alerts run` in another.

Measures, over 20 alerts to a ward of 200 confirmed residents (a second ward of 50 must get
nothing), the time from starting `alerts post --urgent` to the last resident's copy being
accepted by an SMTP server on loopback (aiosmtpd, in this process). In the same run it
measures a baseline: the same alert posted and then sent by a one-shot `alerts deliver`,
with no service running.

    python bench/urgent_latency.py [--alerts 20] [--residents 200]

Prints the median and worst latencies and their ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import smtp_sink  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alerts(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alerts.cli", "--config", str(config), *args],
                          capture_output=True, text=True, check=check)


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--residents", type=int, default=200)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, smtp_sink() as (sink, smtp_port):
        folder = Path(tmp)
        web_port = free_port()
        config = folder / "alerts.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{folder / "alerts.db"}"\n'
            f'[mail]\ntransport = "smtp"\nsmtp_port = {smtp_port}\nconcurrency = 20\n'
            f'[web]\nport = {web_port}\nsecret_key = "bench-secret"\n'
            'base_url = "https://alerts.example.org"\n'
        )
        alerts(config, "init")
        alerts(config, "wards", "add", "RIV", "Riverside", "--team-email", "riv@police.example")
        alerts(config, "wards", "add", "HIL", "Hillcrest", "--team-email", "hil@police.example")
        members = folder / "members.csv"
        rows = [f"riv{n}@home.example,RIV" for n in range(options.residents)]
        rows += [f"hil{n}@home.example,HIL" for n in range(50)]
        members.write_text("email,ward\n" + "\n".join(rows) + "\n")
        alerts(config, "subscribers", "import", str(members), "--confirmed")

        def delivered(marker: str) -> int:
            return sum(1 for r in list(sink.received) if marker in r.data.decode("latin-1"))

        # Baseline: no service; post, then a one-shot deliver.
        baseline: list[float] = []
        for n in range(3):
            marker = f"baseline-{n}-{time.time_ns()}"
            started = time.perf_counter()
            alerts(config, "post", "--ward", "RIV", "--urgent", "--yes", "--title", marker,
                   "--body", "Baseline alert.")
            alerts(config, "deliver")
            wait_for(lambda m=marker: delivered(m) == options.residents, 60, "baseline")
            baseline.append(time.perf_counter() - started)

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        service = subprocess.Popen(
            [sys.executable, "-m", "alerts.cli", "--config", str(config), "run"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(service.stdout or []), daemon=True).start()

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_for(healthy, 30, "alerts run to answer /healthz")
        latencies: list[float] = []
        firsts: list[float] = []
        posting: list[float] = []
        try:
            for n in range(options.alerts):
                marker = f"alert-{n}-{time.time_ns()}"
                started = time.perf_counter()
                alerts(config, "post", "--ward", "RIV", "--urgent", "--yes", "--title", marker,
                       "--body", "Please keep away from the area.")
                posting.append(time.perf_counter() - started)
                first_seen: list[float] = []

                def done(m: str = marker, seen: list[float] = first_seen) -> bool:
                    count = delivered(m)
                    if count and not seen:
                        seen.append(time.perf_counter())
                    return count == options.residents

                wait_for(done, 60, f"alert {n}")
                latencies.append(time.perf_counter() - started)
                firsts.append(first_seen[0] - started)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        wrong = [r for r in sink.received if any(a.startswith("hil") for a in r.rcpt_tos)]
        if wrong:
            raise SystemExit(f"{len(wrong)} alert(s) reached the wrong ward")

        median, worst = statistics.median(latencies), max(latencies)
        base = statistics.median(baseline)
        print(f"urgent alerts: {options.alerts} to {options.residents} residents each "
              f"(2 cores, SQLite, aiosmtpd on loopback)")
        print(f"  the `alerts post --urgent` process alone: median "
              f"{statistics.median(posting):.2f} s, worst {max(posting):.2f} s")
        print(f"  post -> first copy accepted: median {statistics.median(firsts):.2f} s, "
              f"worst {max(firsts):.2f} s")
        print(f"  post -> last copy accepted:  median {median:.2f} s, worst {worst:.2f} s")
        print(f"  baseline (post, then one-shot `alerts deliver`, no service): median "
              f"{base:.2f} s")
        print(f"  ratio to baseline: median {median / base:.2f}, worst {worst / base:.2f}")
        print(f"  service exit status on SIGTERM: {service.returncode}")


if __name__ == "__main__":
    main()

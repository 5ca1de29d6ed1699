"""Each resident and public page's CPU a request, the web app called in-process: no server,
no network, no load generator sharing the CPU; what the page's own code costs, steadier than
bench/web.py's req/s on a busy machine.

    python bench/web_pages_cpu.py [--subscribers 20000] [--wards 100] [--requests 1000]
                                  [--burst 200] [--tree PATH] [--profile PAGE]

Setup (not timed) as bench/web.py's: a fresh SQLite database with `--wards` wards and
`--subscribers` residents, each ward's archive and urgent alert, real signed links; then it
waits until what it wrote has settled (`open_feeds.SETTLE`). The app is `create_app` on that
database with the product's settings. Each page is asked 50 times to warm up, then
`--requests` times, one after the other, with the same link; the burst's mix is every
first-party link of `--burst` residents' digests (bench/web.py's `--burst`: the archive,
preferences, unsubscribe and five vote links each, every token different), once each. For
each: the process's CPU time a request (`time.process_time`, which counts worker threads
too) and the wall time. `--tree` measures the `alerts` of another checkout (an older commit
in a git worktree) with this same script; `--profile PAGE` adds cProfile's top entries.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import web  # bench/web.py: the setup, shared


async def call(app: Any, path: str) -> int:
    """One GET of `path`, as uvicorn would hand it to the app; the answer's status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5555),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]}
    started: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(message["status"])

    await app(scope, receive, send)
    return started[0]


async def measure(app: Any, pages: dict[str, str], burst: list[str], requests: int,
                  profile: str | None) -> None:
    print(f"{'page':14s} {'status':>6s} {'CPU us':>8s} {'wall us':>8s}")
    for name, path in pages.items():
        for _ in range(50):
            await call(app, path)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            status = await call(app, path)
        print(f"{name:14s} {status:6d} {1e6 * (time.process_time() - cpu) / requests:8.0f} "
              f"{1e6 * (time.perf_counter() - wall) / requests:8.0f}")
    cpu, wall = time.process_time(), time.perf_counter()
    statuses = [await call(app, path) for path in burst]
    print(f"{'burst mix':14s} {max(statuses):6d} "
          f"{1e6 * (time.process_time() - cpu) / len(burst):8.0f} "
          f"{1e6 * (time.perf_counter() - wall) / len(burst):8.0f}   "
          f"({len(burst):,} links, each once)")
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            await call(app, pages[profile])
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--wards", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--burst", type=int, default=200, metavar="MESSAGES")
    parser.add_argument("--tree", type=Path, help="the checkout whose alerts to measure")
    parser.add_argument("--profile", metavar="PAGE")
    options = parser.parse_args()
    if options.tree:
        sys.path.insert(0, str(options.tree.resolve()))
    # Imported now, from --tree if given: the setup's helpers put this checkout on the path.
    import alerts
    folder = Path(tempfile.mkdtemp(prefix="bench-web-pages-"))
    url = f"sqlite:///{folder / 'alerts.db'}"
    config = web.write_config(folder / "alerts.toml", url, folder / "maildir")
    os.environ["ALERTS_BENCH_CONFIG"] = str(config)
    links = web.populate(url, options.wards, options.subscribers)
    burst = web.burst_paths(url, options.burst)
    written = time.perf_counter()

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.web.app import create_app

    settings = load_settings(str(config))
    app = create_app(session_factory(make_engine(url)), settings=settings)
    pages = {"subscribe": "/subscribe", "wards": "/wards/", "archive": f"/wards/{web.WARD}/",
             "feed": f"/wards/{web.WARD}/feed.atom",
             "unsubscribe": f"/unsubscribe/{links.unsubscribe}",
             "preferences": f"/preferences/{links.preferences}",
             "vote link": f"/useful/{links.useful}", "healthz": "/healthz", "front door": "/"}
    web.settle_after(written)
    print(f"alerts from {Path(alerts.__file__).parent.parent}; {options.wards} wards, "
          f"{options.subscribers:,} residents; {web.load()}")
    asyncio.run(measure(app, pages, burst, options.requests, options.profile))
    print(web.load())


if __name__ == "__main__":
    main()

"""The residents' and public pages under load: `alerts web` on a county-size database, driven
by Debian's `wrk`, beside a bare FastAPI page served the same way in the same run.

    python bench/web.py [--subscribers 100000] [--wards 100] [--seconds 4] [--connections 20]
                        [--pages archive,feed,...] [--workers 2] [--compare-h11]
                        [--burst 10000] [--send-messages N]

Setup (not timed): a fresh SQLite database (`alerts init`'s migrations) with `--wards` wards
(RIV, the one measured, among them) and `--subscribers` confirmed weekly subscribers spread
over them (bulk inserts through the models); each ward gets the posts, advice and two contact
sessions of bench/deliver.py's digest, and an urgent alert (`post_urgent`, so a real message,
its item and one delivery per resident, marked sent as if the round had gone). Tokens are
signed by the product's own functions for real rows: an unsubscribe and a preferences link of
one resident, a one-click unsubscribe of another, a vote link of RIV's urgent alert. Then it waits
until what it wrote has settled (`open_feeds.SETTLE`), as a ward's archive is between posts.

Served: `alerts web --port P` in its own process, as an operator runs it (uvicorn with the
product's settings, the delivery loop beside it), and the ceiling: a FastAPI app with one
`async def` page (and one plain `def` page, to show the worker-thread cost) served by the
same `make_server` on the same loop (`run_loop`) in another process. Each round serves both
the same way: first one process (`--workers 1`), then `alerts web --workers N` beside the
bare page in N processes sharing one socket (`--workers`, default 2; 1 skips the round).
`--compare-h11` runs each round twice, with uvicorn's fast path (httptools, uvloop: what
is installed) and with pure h11 on asyncio's loop (the two hidden by a sitecustomize on
PYTHONPATH, which the web processes inherit). wrk runs 2 threads and `--connections` connections for
`--seconds` per page, after a one-second warm-up of that page; the one-click POST is a wrk Lua
script. For each page: req/s, p50 and p99 latency, the ratio to the bare page, and how many
answers were not 2xx/3xx (a one-click POST repeated on an unsubscribed row still answers).
The load average is printed before and after. Nothing asserts a speed.

`--burst N` then plays what a mail filter does to an N-message digest round: every
first-party link of every message opened once (per resident: the ward's archive, the
preferences and unsubscribe pages, and five "was this useful?" links, each with its own ballot
and the resident's own signed tokens), by one wrk thread over `--connections` connections that
exits when the last answer arrives; it prints the seconds the site took to absorb them,
against the last round's site (N processes, the fast path if installed). Beside it, in the
same run, the time the round takes to send: bench/deliver.py's measurement A (SQLite, one
process, `queue_digests` then `deliver_due` to Postfix's smtp-sink, unsigned: the fastest
send, so the strictest goal) on a fresh database of `--send-messages` residents (default:
the burst's N); skipped, and said, when smtp-sink is not installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SECRET = "bench-secret-key-not-for-production"
WARD = "RIV"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
BARE_HTML = "<!doctype html><title>bare</title><p>" + "A bare page. " * 40 + "</p>\n"
BURST_LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local sent, answered, bad = 0, 0, 0
request = function()
  sent = sent + 1
  return wrk.format("GET", paths[((sent - 1) %% #paths) + 1])
end
response = function(status, headers, body)
  answered = answered + 1
  if status >= 400 then bad = bad + 1 end
  if answered >= #paths then
    io.write(string.format("burst answered=%%d bad=%%d\\n", answered, bad))
    io.flush()
    os.exit(0)
  end
end
"""
USEFUL_LINKS = 5
ONE_CLICK_LUA = """
wrk.method = "POST"
wrk.body = "List-Unsubscribe=One-Click"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --- setup (not timed) --------------------------------------------------------------------

@dataclass(frozen=True)
class Links:
    unsubscribe: str
    one_click: str
    preferences: str
    useful: str


def populate(url: str, wards: int, subscribers: int) -> Links:
    """Wards, confirmed residents, each ward's archive and urgent alert; real signed links."""
    from deliver import ADVICE, MORE_ADVICE, POSTS, add_residents, session_items
    from sqlalchemy import select, update

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, migrate, session_factory
    from alerts.delivery.outbox import Delivery, DeliveryStatus
    from alerts.mail.messages import Message, MessageItem
    from alerts.mail.vote_links import Ballot, new_ballot_number, sign_vote
    from alerts.sources.items import ItemKind, store_items
    from alerts.sources.officer import officer_item
    from alerts.sources.registry import officer_source
    from alerts.usecases.posting import post_urgent
    from subscriptions.links import Purpose, sign_reference
    from subscriptions.subscribers import Subscription
    from subscriptions.wards import Ward, add_ward

    settings = load_settings(os.environ["ALERTS_BENCH_CONFIG"])
    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    joined = datetime.now(UTC) - timedelta(days=30)
    codes = [WARD] + [f"W{n:03d}" for n in range(1, wards)]
    with factory() as session, session.begin():
        ward_ids = [add_ward(session, code, "Riverside" if code == WARD else f"Ward {code}",
                             f"team-{code.lower()}@police.example").id for code in codes]
    add_residents(engine, ward_ids, subscribers, joined=joined, source="bench/web.py")
    # An archive a few weeks deep: the same posts on three earlier days, then the alert.
    now = datetime.now(UTC)
    start = (now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    with factory() as session, session.begin():
        for ward_id in ward_ids:
            ward = session.get(Ward, ward_id)
            assert ward is not None
            items = []
            for weeks in (3, 2, 1):
                when = now - timedelta(weeks=weeks)
                items += [officer_item(title=f"{title} ({weeks})", body=body,
                                       kind=ItemKind.POST, starts=None, ends=None,
                                       location=None, now=when) for title, body in POSTS]
                items += [officer_item(title=f"{title} ({weeks})", body=body,
                                       kind=ItemKind.ADVICE, starts=None, ends=None,
                                       location=None, now=when)
                          for title, body in (ADVICE, *MORE_ADVICE)]
            items += session_items(start, now=now)
            store_items(session, officer_source(session, ward), items)
    alert = ("Police incident on the river path",
             "The river path between the two bridges is closed while officers deal with an "
             "incident. Please use the high street instead. If you saw anything, call 101.")
    for code in codes:
        with factory() as session, session.begin():
            post_urgent(session, settings, ward_code=code, title=alert[0], body=alert[1],
                        now=datetime.now(UTC))
    with engine.begin() as connection:  # the round has gone: the delivery loop is idle
        connection.execute(update(Delivery).values(status=DeliveryStatus.SENT.value,
                                                   sent_at=datetime.now(UTC)))
    with factory() as session:
        riv = session.scalars(select(Subscription).join(Ward, Ward.id == Subscription.ward_id)
                              .where(Ward.code == WARD).order_by(Subscription.id)
                              .limit(2)).all()
        message, item_id = session.execute(
            select(Message, MessageItem.item_id)
            .join(MessageItem, MessageItem.message_id == Message.id)
            .join(Ward, Ward.id == Message.ward_id).where(Ward.code == WARD)).first()
        stay, leave = riv
        ballot = Ballot(item_id, message.id, True, new_ballot_number())
        links = Links(
            unsubscribe=sign_reference(SECRET, Purpose.UNSUBSCRIBE, stay.id, stay.nonce),
            one_click=sign_reference(SECRET, Purpose.UNSUBSCRIBE, leave.id, leave.nonce),
            preferences=sign_reference(SECRET, Purpose.PREFERENCES, stay.id, stay.nonce),
            useful=sign_vote(SECRET, ballot, message.nonce))
    engine.dispose()
    return links


def burst_paths(url: str, messages: int) -> list[str]:
    """Every first-party link of `messages` residents' digests, with real signed tokens."""
    from sqlalchemy import select

    from alerts.core.db import make_engine, session_factory
    from alerts.mail.messages import Message, MessageItem
    from alerts.mail.vote_links import Ballot, new_ballot_number, sign_vote
    from subscriptions.links import Purpose, sign_reference
    from subscriptions.subscribers import Subscription
    from subscriptions.wards import Ward

    engine = make_engine(url)
    with session_factory(engine)() as session:
        alerts = {code: (message_id, nonce, item_id) for code, message_id, nonce, item_id in
                  session.execute(select(Ward.code, Message.id, Message.nonce,
                                         MessageItem.item_id)
                                  .join(Message, Message.ward_id == Ward.id)
                                  .join(MessageItem, MessageItem.message_id == Message.id))}
        residents = session.execute(
            select(Subscription.id, Subscription.nonce, Ward.code)
            .join(Ward, Ward.id == Subscription.ward_id)
            .order_by(Subscription.id).offset(2).limit(messages)).all()
    engine.dispose()
    paths = []
    for ident, nonce, code in residents:
        message_id, message_nonce, item_id = alerts[code]
        paths += [f"/wards/{code}/",
                  f"/preferences/{sign_reference(SECRET, Purpose.PREFERENCES, ident, nonce)}",
                  f"/unsubscribe/{sign_reference(SECRET, Purpose.UNSUBSCRIBE, ident, nonce)}"]
        paths += [f"/useful/{sign_vote(SECRET, Ballot(item_id, message_id, n % 2 == 0, new_ballot_number()), message_nonce)}"  # noqa: E501
                  for n in range(USEFUL_LINKS)]
    return paths


def burst(site: str, paths: list[str], folder: Path, connections: int) -> tuple[float, str]:
    """Seconds from starting wrk to the last of `paths` answered, and wrk's own line."""
    listing = folder / "burst.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = folder / "burst.lua"
    script.write_text(BURST_LUA % listing)
    started = time.perf_counter()
    done = subprocess.run([WRK, "-t1", f"-c{connections}", "-d3600s", "--timeout", "30s",
                           "-s", str(script), site], capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    line = next((x for x in done.stdout.splitlines() if x.startswith("burst ")),
                f"wrk ended without finishing: {done.stdout[-500:]} {done.stderr[-500:]}")
    return seconds, line


def write_config(path: Path, url: str, maildir: Path) -> Path:
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[mail]\ntransport = "maildir"\nmaildir = "{maildir}"\n'
        f'[web]\nsecret_key = "{SECRET}"\nbase_url = "https://alerts.example.org"\n')
    return path


# --- the servers ----------------------------------------------------------------------------

def bare_server(port: int, workers: int) -> None:
    """The ceiling: FastAPI, one page, served by the product's own `make_server` on its
    loop; with `workers` > 1 from that many forked processes on the one socket."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from alerts.service.webserver import listen, make_server, run_loop

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/")
    async def bare() -> HTMLResponse:
        return HTMLResponse(BARE_HTML)

    @app.get("/thread")
    def bare_thread() -> HTMLResponse:
        return HTMLResponse(BARE_HTML)

    sock = listen("127.0.0.1", port)
    # The product's uvicorn settings; a plain Server, so that SIGTERM stops it.
    server = uvicorn.Server(make_server(app).config)
    if workers == 1:
        run_loop(server.serve(sockets=[sock]))
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # no loop has started yet: nothing to share by mistake
            run_loop(server.serve(sockets=[sock]))
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: [os.kill(pid, signal.SIGTERM) for pid in children])
    for pid in children:
        os.waitpid(pid, 0)


def hide_fast_path(folder: Path) -> dict[str, str]:
    """An environment in which httptools and uvloop cannot be imported: pure h11, asyncio."""
    site = folder / "h11-only"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.modules['httptools'] = None\nsys.modules['uvloop'] = None\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def fast_path_installed() -> str:
    found = []
    for name in ("httptools", "uvloop"):
        try:
            __import__(name)
            found.append(name)
        except ImportError:
            pass
    return " + ".join(found) or "none"


def start(args: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{args} ended:\n{process.stderr.read().decode()[-3000:]}"
                             if process.stderr else f"{args} ended")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{args} did not answer {url}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# --- wrk ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> Figures:
    def run(duration: int) -> str:
        args = [WRK, "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout",
                "10s"]
        if script is not None:
            args += ["-s", str(script)]
        return subprocess.run([*args, url], capture_output=True, text=True,
                              check=True).stdout

    run(1)  # warm-up: the first render of each template, the database's pages
    out = run(seconds)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Figures(rps, _ms(*p50.groups()) if p50 else float("nan"),  # type: ignore[arg-type]
                   _ms(*p99.groups()) if p99 else float("nan"),  # type: ignore[arg-type]
                   int(bad[1]) if bad else 0)


@dataclass(frozen=True)
class Round:
    """One way of serving both the site and the bare page."""

    workers: int
    stack: str  # "fast path" (what is installed) or "h11"

    @property
    def name(self) -> str:
        processes = "1 process" if self.workers == 1 else f"{self.workers} processes"
        return f"{processes}, {self.stack}"


def site_pages(site: str, bare: str, links: Links,
               one_click: Path) -> list[tuple[str, str, Path | None]]:
    return [
        ("bare async def", f"{bare}/", None),
        ("bare def (thread)", f"{bare}/thread", None),
        ("subscribe", f"{site}/subscribe", None),
        ("wards", f"{site}/wards/", None),
        ("archive", f"{site}/wards/{WARD}/", None),
        ("feed", f"{site}/wards/{WARD}/feed.atom", None),
        ("unsubscribe", f"{site}/unsubscribe/{links.unsubscribe}", None),
        ("one-click POST", f"{site}/unsubscribe/{links.one_click}", one_click),
        ("preferences", f"{site}/preferences/{links.preferences}", None),
        ("useful", f"{site}/useful/{links.useful}", None),
        ("healthz", f"{site}/healthz", None),
        ("front door", f"{site}/", None),
    ]


def serve_round(round_: Round, config: Path, folder: Path, links: Links,
                options: argparse.Namespace, burst_paths_: list[str] | None,
                ) -> tuple[dict[str, Figures], tuple[float, str] | None]:
    """Start the site and the bare page served the same way, measure every page (and the
    burst, if given), stop both."""
    env = hide_fast_path(folder) if round_.stack == "h11" else None
    web_port, bare_port = free_port(), free_port()
    site = f"http://127.0.0.1:{web_port}"
    bare = f"http://127.0.0.1:{bare_port}"
    web = start([sys.executable, "-m", "alerts.cli", "--config", str(config), "web",
                 "--host", "127.0.0.1", "--port", str(web_port),
                 "--workers", str(round_.workers)], f"{site}/healthz", env)
    ceiling = start([sys.executable, __file__, "--bare-server", str(bare_port),
                     "--workers", str(round_.workers)], bare, env)
    wanted = {name.strip() for name in options.pages.split(",") if name.strip()}
    results: dict[str, Figures] = {}
    absorbed = None
    try:
        time.sleep(2.0 if round_.workers > 1 else 0.0)  # every web process has started
        for name, address, lua in site_pages(site, bare, links, folder / "one_click.lua"):
            if wanted and name not in wanted and not name.startswith("bare"):
                continue
            results[name] = wrk(address, options.seconds, options.connections, lua)
        if burst_paths_ is not None:
            absorbed = burst(site, burst_paths_, folder, options.connections)
    finally:
        stop(web)
        stop(ceiling)
    return results, absorbed


def print_round(round_: Round, results: dict[str, Figures]) -> None:
    top = results["bare async def"].rps
    print(f"\n{round_.name}: {load()}")
    print(f"{'page':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}  not 2xx/3xx")
    for name, figures in results.items():
        print(f"{name:<20}{figures.rps:>9.0f}{figures.p50_ms:>9.1f}{figures.p99_ms:>9.1f}"
              f"{figures.rps / top:>9.2f}  {figures.bad}")


def print_summary(rounds: list[Round], all_results: dict[Round, dict[str, Figures]]) -> None:
    """Each page's req/s in every round, side by side, and against the first round."""
    first = rounds[0]
    print(f"\nreq/s by round (x = against {first.name}):")
    print(f"{'page':<20}" + "".join(f"{r.name:>26}" for r in rounds))
    for name in all_results[first]:
        cells = []
        for r in rounds:
            rps = all_results[r][name].rps
            cells.append(f"{rps:>15.0f} ({rps / all_results[first][name].rps:>4.2f}x)"
                         .rjust(26))
        print(f"{name:<20}" + "".join(cells))


def send_time(folder: Path, wards: int, messages: int) -> dict[str, float] | None:
    """bench/deliver.py's measurement A on `messages` residents: seconds to queue and send
    the round, unsigned; None without smtp-sink."""
    from deliver import SmtpSink, require_smtp_sink, sqlite_run

    try:
        binary = require_smtp_sink()
    except SystemExit as missing:
        print(f"send time: not measured ({str(missing).splitlines()[0]})")
        return None
    sink = SmtpSink(binary, folder)
    try:
        _, result = sqlite_run(folder, sink, "send", wards, messages)
    finally:
        sink.stop()
    return {"messages": float(result["sent"]), "seconds": float(result["wall_seconds"])}


def settle_after(written: float) -> None:
    """Wait until the archive the setup wrote has settled, as a ward's archive is between
    posts: a ward changed within `SETTLE` is read afresh at each request (late commits,
    clock skew), so measuring it at once would time the fresh read, not the kept copy."""
    from alerts.usecases.open_feeds import SETTLE

    wait = written + SETTLE.total_seconds() + 1 - time.perf_counter()
    if wait > 0:
        print(f"waiting {wait:.0f} s for the archive to settle (SETTLE = {SETTLE})")
        time.sleep(wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--wards", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--pages", default="", help="comma-separated names to run (default all)")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="the second round's web processes (1: one round only)")
    parser.add_argument("--compare-h11", action="store_true",
                        help="run each round with pure h11 on asyncio's loop too")
    parser.add_argument("--burst", type=int, default=0, metavar="MESSAGES",
                        help="also open every link of this many digests once (e.g. 10000)")
    parser.add_argument("--send-messages", type=int, default=0, metavar="N",
                        help="residents of the send-time measurement (default: --burst)")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.bare_server:
        bare_server(options.bare_server, options.workers)
        return
    if not os.path.exists(WRK):
        raise SystemExit("this benchmark drives the site with wrk: apt-get install -y wrk")

    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    try:
        sent = None
        if options.burst:
            sent = send_time(folder, options.wards, options.send_messages or options.burst)
        url = f"sqlite:///{folder / 'alerts.db'}"
        config = write_config(folder / "alerts.toml", url, folder / "maildir")
        os.environ["ALERTS_BENCH_CONFIG"] = str(config)
        began = time.perf_counter()
        links = populate(url, options.wards, options.subscribers)
        written = time.perf_counter()
        print(f"setup: {options.wards} wards, {options.subscribers:,} subscribers, an archive "
              f"and an urgent alert per ward, in {time.perf_counter() - began:.0f} s "
              f"(SQLite, {folder / 'alerts.db'})")
        (folder / "one_click.lua").write_text(ONE_CLICK_LUA)
        stacks = ["h11", "fast path"] if options.compare_h11 else ["fast path"]
        rounds = [Round(workers, stack) for workers in sorted({1, options.workers})
                  for stack in stacks]
        paths = burst_paths(url, options.burst) if options.burst else None
        settle_after(written)
        print(f"wrk -t2 -c{options.connections} -d{options.seconds:g}s; fast path installed: "
              f"{fast_path_installed()}; {os.cpu_count()} CPUs; before: {load()}")
        all_results: dict[Round, dict[str, Figures]] = {}
        absorbed = None
        for round_ in rounds:
            last = round_ == rounds[-1]
            results, taken = serve_round(round_, config, folder, links, options,
                                         paths if last else None)
            all_results[round_] = results
            print_round(round_, results)
            if taken is not None:
                absorbed = taken
        if len(rounds) > 1:
            print_summary(rounds, all_results)
        if absorbed is not None and paths is not None:
            seconds, line = absorbed
            need = len(paths) / sent["seconds"] if sent else None
            print(f"\nburst ({rounds[-1].name}): {options.burst:,} messages, {len(paths):,} GETs "
                  f"({line}) absorbed in {seconds:.1f} s = {len(paths) / seconds:.0f} req/s; "
                  f"{load()}")
            if sent is not None and need is not None:
                print(f"the round's send (bench/deliver.py A, SQLite one process, unsigned): "
                      f"{sent['messages']:,.0f} messages in {sent['seconds']:.1f} s = "
                      f"{sent['messages'] / sent['seconds']:.0f} msg/s, so the burst arrives "
                      f"at {need:.0f} req/s")
                verdict = "MET" if seconds < sent["seconds"] else "NOT MET"
                print(f"goal (absorbed in less time than the send): {seconds:.1f} s vs "
                      f"{sent['seconds']:.1f} s: {verdict} "
                      f"({seconds / sent['seconds']:.1f}x the send time)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

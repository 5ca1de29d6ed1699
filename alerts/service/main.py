"""Starting and stopping `alerts run`, `alerts worker` and `alerts web`.

`alerts run` drives, in one event loop: APScheduler (collect, digest and reconcile jobs in
worker threads), the delivery loop, and the web app under uvicorn. `alerts worker` runs the
delivery loop alone; `alerts web` the web app and the delivery loop, without the scheduler,
so that what a page says goes out at once (a confirmation, a my-data link, a password reset,
an officer's urgent alert) does, even with no `alerts run` or `alerts worker` beside it.

Stopping: the first SIGINT or SIGTERM stops taking new work (no new job starts, no new
batch is claimed), lets the delivery batch in flight finish and be recorded, waits for the
running jobs, shuts the scheduler down, stops uvicorn and disposes the engine: exit 0. A
second signal stops at once: the batch in flight is cancelled and running jobs are
abandoned. Rows that a forced stop (or kill -9, or a crash) leaves in `sending` are not
lost: the next sender to start on this host takes them back at once, since their lease names
a holder that is gone (alerts.delivery.outbox.end_leases_of_the_dead); elsewhere their lease
(`mail.lease_seconds`) runs out and the next claim takes them again. Each message is
recorded as sent as soon as the relay accepts it, so only those in flight, at most
`mail.concurrency`, may then go out twice; that is the price of not waiting, and the reason
the first signal waits.

Several web processes (`web.workers` > 1, `--workers N`): the parent binds the port and
starts that many web-only children serving it (`serve_web_process`, managed by
`alerts.service.workers`); the scheduler, the delivery loop and the LMTP server stay in the
parent, and stopping the parent stops them first.

Staying up: a job store that fails for a while (a locked SQLite, a PostgreSQL restarting)
does not stop the scheduler (see `scheduler.ServiceScheduler`), and a leader whose lock went
with its database connection stops scheduling at once and goes on as a follower, leading
again when it gets the lock back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts.core.config import Settings
from alerts.core.db import make_engine, session_factory
from alerts.core.events import (
    DigestQueued,
    EventBus,
    ItemPublished,
    MailQueued,
    ReplyReceived,
    UrgentAlertPosted,
)
from alerts.core.scheduler_store import SchedulerStatus, stored_status
from alerts.inbound.intake import Intake
from alerts.inbound.lmtp import InboundHandler, ListenAddressError, parse_listen, start_lmtp
from alerts.service import context, plan
from alerts.service.context import JobTracker, ServiceContext
from alerts.service.delivery import DeliveryLoop
from alerts.service.leader import Leadership, leadership_for
from alerts.service.logs import configure_logging
from alerts.service.scheduler import describe, make_scheduler, scheduler_status
from alerts.service.webserver import (
    EmbeddedServer,
    ServiceError,
    address,
    listen,
    make_server,
    run_loop,
)
from alerts.service.workers import WebProcesses, waker, watch_parent
from alerts.usecases.pipeline import wire
from alerts.web.app import create_app
from subscriptions.base import utcnow

log = logging.getLogger("alerts.service")

# Collect and digest jobs run in this many threads at most; more would mostly queue on
# the database (SQLite takes one writer at a time) and on the feeds' servers.
JOB_THREADS = 8

# How often a follower tries to take over the scheduler, and a leader checks its lock.
LEADERSHIP_SECONDS = 5.0

# How long a forced stop waits for the delivery task to unwind after cancelling it.
FORCED_GRACE = 2.0


class Stopper:
    """SIGINT and SIGTERM: the first asks for a clean stop, the second for a quick one."""

    def __init__(self, name: str,
                 signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.name = name
        self.signals = signals
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def __enter__(self) -> Stopper:
        for sig in self.signals:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self.signals:
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.requested.is_set():
            log.info("%s: %s received: stopping after the work in hand (again to stop at "
                     "once)", self.name, sig.name)
            self.requested.set()
        elif not self.forced.is_set():
            log.warning("%s: %s received again: stopping at once", self.name, sig.name)
            self.forced.set()


async def _unless_forced(work: Awaitable[Any], forced: asyncio.Event) -> bool:
    """Await `work`; True if it finished, False if `forced` was set first."""
    task = asyncio.ensure_future(work)
    forcing = asyncio.ensure_future(forced.wait())
    try:
        await asyncio.wait({task, forcing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forcing.cancel()
    return task.done()


async def _stop_delivery(task: asyncio.Task[None], delivery: DeliveryLoop,
                         stopper: Stopper) -> None:
    delivery.stop()
    if not await _unless_forced(task, stopper.forced):
        log.warning("cancelling the delivery batch in flight; its rows are sent again when "
                    "their lease ends")
        task.cancel()
        await asyncio.wait({task}, timeout=FORCED_GRACE)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("the delivery loop had failed", exc_info=task.exception())


async def _stop_web(task: asyncio.Task[None], server: EmbeddedServer, stopper: Stopper) -> None:
    server.should_exit = True
    if not await _unless_forced(task, stopper.forced):
        server.force_exit = True
        await asyncio.wait({task}, timeout=FORCED_GRACE)


StopWeb = Callable[[Stopper], Awaitable[None]]


def _serve_web(settings: Settings, sock: Any, make_app: Callable[[], FastAPI], *,
               wake: Callable[[], None], leading: Callable[[], bool] | None,
               name: str) -> tuple[asyncio.Task[None], StopWeb, str]:
    """Serve the web app on `sock`: in this process, or in `web.workers` child processes
    (whose queued mail calls `wake`); the task, how to stop it, and words for the log."""
    if settings.web.workers <= 1:
        server = make_server(make_app())
        task = asyncio.create_task(server.serve(sockets=[sock]), name="the web server")
        return task, lambda stopper: _stop_web(task, server, stopper), ""
    processes = WebProcesses(settings.web.workers, serve_web_process, settings, sock,
                             leading=leading, args=(name,))
    processes.start(wake)
    watching = asyncio.create_task(processes.watch(), name="the web processes")

    async def stop(stopper: Stopper) -> None:
        watching.cancel()
        await processes.stop(stopper.forced)

    pids = ", ".join(str(pid) for pid in processes.pids)
    return watching, stop, f" ({processes.count} web processes: pids {pids})"


async def _first_of(stopper: Stopper, *tasks: asyncio.Task[None]) -> bool:
    """Wait for a stop request (True) or for a part to end on its own, which it should not
    (False, logged)."""
    requested = asyncio.ensure_future(stopper.requested.wait())
    done, _ = await asyncio.wait({requested, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    if requested in done:
        return True
    requested.cancel()
    for task in done:
        error = None if task.cancelled() else task.exception()
        log.error("%s ended unexpectedly: %s", task.get_name(), error or "no error given",
                  exc_info=error)
    return False


async def _watch_leadership(leadership: Leadership, scheduler: Any, lead: Callable[[], str],
                            settings: Settings, stopper: Stopper) -> None:
    """A follower tries for the lock and takes over the scheduler when it gets it. A leader
    that lost its lock (its database connection ended: the server restarted, or the
    connection was cut) shuts its scheduler down at once rather than risk two schedulers,
    and goes on as a follower: it leads again if it gets the lock back first, and then the
    jobs that came due meanwhile run once. While the database cannot be reached the tries
    fail; the log says so once, and once when it answers again."""
    interval = min(settings.scheduler.reconcile_seconds, LEADERSHIP_SECONDS)
    unreachable = False
    while not stopper.requested.is_set():
        await asyncio.sleep(interval)
        try:
            await _check_leadership(leadership, scheduler, lead)
        except Exception as exc:
            if not unreachable:
                log.error("alerts run: cannot check the scheduler lock (%s); trying every %g s",
                          describe(exc), interval)
            unreachable = True
            continue
        if unreachable:
            log.info("alerts run: the scheduler lock can be checked again")
            unreachable = False


async def _check_leadership(leadership: Leadership, scheduler: Any,
                            lead: Callable[[], str]) -> None:
    if scheduler.running:
        if not await asyncio.to_thread(leadership.still_held):
            log.error("alerts run: lost the scheduler lock (its database connection ended); "
                      "scheduling stops until this process or another takes it again")
            scheduler.shutdown(wait=False)
        return
    if not await asyncio.to_thread(leadership.try_acquire):
        return
    try:
        # On the loop's thread: the scheduler binds to the running loop as it starts.
        log.info("alerts run: took over the scheduler: %s", lead())
    except BaseException:
        # Not half a leader: the lock goes, for this process or another to try again.
        if scheduler.running:
            scheduler.shutdown(wait=False)
        with contextlib.suppress(Exception):
            leadership.release()
        raise


def _wake_on_events(bus: EventBus, wake: Callable[[], None]) -> None:
    # Subscribed after the pipeline's handlers, so the rows they queue exist when the
    # delivery loop looks.
    for event_type in (UrgentAlertPosted, DigestQueued, ItemPublished, ReplyReceived,
                       MailQueued):
        bus.subscribe(event_type, lambda _event: wake())


async def _start_lmtp(settings: Settings, factory: sessionmaker[Session],
                      bus: EventBus) -> asyncio.Server | None:
    """The LMTP server `inbound.lmtp` asks for, if any; replies it takes wake delivery."""
    if not settings.inbound.lmtp:
        return None
    try:
        host, port = parse_listen(settings.inbound.lmtp)
    except ListenAddressError as error:
        raise ServiceError(f"inbound.lmtp: {error}") from None
    handler = InboundHandler(Intake(factory, settings, publish=bus.publish), settings)
    try:
        return await start_lmtp(handler, host, port)
    except OSError as error:
        raise ServiceError(f"inbound.lmtp: cannot listen on {host}:{port}: "
                           f"{error.strerror or error}") from None


def _abandon(jobs: JobTracker) -> None:
    """After a forced stop, do not wait for job threads (a slow fetch) at interpreter exit."""
    if jobs.running:
        log.warning("alerts run: abandoning %d running job(s); their work is redone on "
                    "the next run", jobs.running)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(1)


async def _service(settings: Settings, engine: Engine, factory: sessionmaker[Session],
                   bus: EventBus) -> int:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(JOB_THREADS, thread_name_prefix="alerts-job"))
    with Stopper("alerts run") as stopper:
        sock = listen(settings.web.host, settings.web.port)
        try:
            lmtp = await _start_lmtp(settings, factory, bus)
        except BaseException:
            sock.close()
            raise
        jobs = JobTracker()
        scheduler = make_scheduler(engine, settings)
        delivery = DeliveryLoop(factory, settings, bus=bus)
        _wake_on_events(bus, delivery.wake)
        context.install(ServiceContext(settings, factory, bus, scheduler, jobs))
        leadership = leadership_for(engine)

        def lead() -> str:
            # Paused until the jobs are reconciled, so nothing runs on a stale plan; jobs
            # whose schedule is unchanged keep their stored next run, so a digest missed
            # while the service was down runs once now.
            scheduler.start(paused=True)
            report = plan.reconcile(scheduler, factory, settings)
            scheduler.resume()
            return f"{len(scheduler.get_jobs())} scheduled job(s) ({len(report.added)} new)"

        try:
            if leadership.try_acquire():
                role = lead()
            else:
                role = ("following: another `alerts run` drives the scheduler; this one "
                        "takes over when it stops")
        except BaseException:
            sock.close()
            if lmtp is not None:
                lmtp.close()
            if scheduler.running:
                scheduler.shutdown(wait=False)
            leadership.release()
            context.clear()
            raise

        def status() -> SchedulerStatus:
            # A follower reads the job table too, so it sees a stalled leader.
            report = scheduler_status(scheduler, engine, settings.scheduler, utcnow())
            report["role"] = "leader" if report["running"] else "follower"
            return report

        web, stop_web, processes = _serve_web(
            settings, sock, lambda: create_app(factory, settings=settings, scheduler=status,
                                               scheduler_required=True, bus=bus),
            wake=delivery.wake, leading=lambda: bool(scheduler.running), name="alerts run")
        sending = asyncio.create_task(delivery.run(), name="the delivery loop")
        watching = asyncio.create_task(
            _watch_leadership(leadership, scheduler, lead, settings, stopper),
            name="the leadership watch")
        log.info("alerts run: pid %d, %s, delivering via %s, web on %s%s%s", os.getpid(), role,
                 _mail_route(settings), address(sock), processes,
                 f", LMTP on {settings.inbound.lmtp}" if lmtp else "")

        clean = await _first_of(stopper, web, sending, watching)

        watching.cancel()
        if lmtp is not None:
            lmtp.close()  # the MTA keeps what it could not hand over; it tries again
        jobs.stop_accepting()
        if scheduler.running:
            scheduler.pause()
        await _stop_delivery(sending, delivery, stopper)
        jobs_done = await jobs.wait_idle(stopper.forced)
        if scheduler.running:
            scheduler.shutdown(wait=False)
        leadership.release()
        await stop_web(stopper)
        context.clear()
        engine.dispose()
        if not jobs_done:
            _abandon(jobs)
        log.info("alerts run: stopped%s", "" if clean else " after a failure")
        return 0 if clean else 1


def _mail_route(settings: Settings) -> str:
    mail = settings.mail
    if mail.transport == "smtp":
        return f"smtp {mail.smtp_host}:{mail.smtp_port}"
    return f"{mail.transport} {mail.maildir}"


async def _worker(settings: Settings, engine: Engine, factory: sessionmaker[Session],
                  bus: EventBus) -> int:
    with Stopper("alerts worker") as stopper:
        delivery = DeliveryLoop(factory, settings, bus=bus)
        sending = asyncio.create_task(delivery.run(), name="the delivery loop")
        log.info("alerts worker: pid %d, delivering via %s, polling every %gs", os.getpid(),
                 _mail_route(settings), settings.scheduler.outbox_poll_seconds)
        clean = await _first_of(stopper, sending)
        await _stop_delivery(sending, delivery, stopper)
        engine.dispose()
        log.info("alerts worker: stopped%s", "" if clean else " after a failure")
        return 0 if clean else 1


async def _web(settings: Settings, engine: Engine, factory: sessionmaker[Session],
               bus: EventBus, host: str, port: int) -> int:
    with Stopper("alerts web") as stopper:
        sock = listen(host, port)
        delivery = DeliveryLoop(factory, settings, bus=bus)
        _wake_on_events(bus, delivery.wake)
        web, stop_web, processes = _serve_web(
            settings, sock, lambda: create_app(
                factory, settings=settings,
                scheduler=lambda: stored_status(engine, settings.scheduler, utcnow()), bus=bus),
            wake=delivery.wake, leading=None, name="alerts web")
        sending = asyncio.create_task(delivery.run(), name="the delivery loop")
        log.info("alerts web: pid %d, listening on %s%s, delivering via %s", os.getpid(),
                 address(sock), processes, _mail_route(settings))
        clean = await _first_of(stopper, web, sending)
        await _stop_delivery(sending, delivery, stopper)
        await stop_web(stopper)
        engine.dispose()
        log.info("alerts web: stopped")
        return 0 if clean else 1


async def _web_process(settings: Settings, engine: Engine, sock: Any, wake: Callable[[], None],
                       leading: Any, name: str) -> int:
    factory = session_factory(engine)
    bus = EventBus()
    wire(bus, factory, settings)
    _wake_on_events(bus, wake)
    if leading is None:  # `alerts web`: the job table, as one process reads it
        required = False

        def status() -> SchedulerStatus:
            return stored_status(engine, settings.scheduler, utcnow())
    else:  # `alerts run`: the job table, and whether the parent drives the scheduler
        required = True

        def status() -> SchedulerStatus:
            report = stored_status(engine, settings.scheduler, utcnow())
            report["running"] = bool(leading.value)
            report["role"] = "leader" if report["running"] else "follower"
            return report

    with Stopper(f"{name}: web process", signals=(signal.SIGTERM,)) as stopper:
        watch_parent(stopper.requested.set)
        server = make_server(create_app(factory, settings=settings, scheduler=status,
                                        scheduler_required=required, bus=bus))
        web = asyncio.create_task(server.serve(sockets=[sock]), name="the web server")
        clean = await _first_of(stopper, web)
        await _stop_web(web, server, stopper)
        engine.dispose()
        return 0 if clean else 1


def serve_web_process(settings: Settings, sock: Any, wake_writer: Any, leading: Any,
                      name: str) -> None:
    """A web-only child of `alerts run` or `alerts web` (web.workers > 1; see
    alerts.service.workers): serves `sock` until SIGTERM or the parent's end. SIGINT is the
    parent's to act on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log.format)
    engine = make_engine(settings.database.url,
                         busy_timeout=settings.database.busy_timeout_seconds)
    code = run_loop(_web_process(settings, engine, sock, waker(wake_writer), leading, name))
    if code:
        raise SystemExit(code)


def run_service(settings: Settings, engine: Engine, factory: sessionmaker[Session],
                bus: EventBus) -> int:
    """`alerts run` until SIGINT or SIGTERM; the exit status."""
    configure_logging(settings.log.format)
    return run_loop(_service(settings, engine, factory, bus))


def run_worker(settings: Settings, engine: Engine, factory: sessionmaker[Session],
               bus: EventBus) -> int:
    """`alerts worker` until SIGINT or SIGTERM; the exit status."""
    configure_logging(settings.log.format)
    return run_loop(_worker(settings, engine, factory, bus))


def run_web(settings: Settings, engine: Engine, factory: sessionmaker[Session],
            bus: EventBus, *, host: str, port: int) -> int:
    """`alerts web` (the web app and the delivery loop) until SIGINT or SIGTERM; the exit
    status."""
    configure_logging(settings.log.format)
    return run_loop(_web(settings, engine, factory, bus, host, port))

"""The `alerts` command line: one module per command group, each a thin call into a service."""

from __future__ import annotations

import gc

from alerts.cli.app import cli

# Each command: the module and attribute that hold it, and its line in `alerts --help` (the
# first sentence of its own help, which tests/cli/test_lazy_commands.py holds them to). A
# command's module is imported only when that command runs or shows its own --help.
cli.listed.update({
    "audit": ("alerts.cli.audit:audit",
              "Show the audit log: every change made by a person, at the command line or on "
              "a page."),
    "check": ("alerts.cli.check:check",
              "Say, a line each, what would stop Gmail, Yahoo and Outlook trusting the mail "
              "(exit status 1 if anything does), then warnings (what reads wrong to a "
              "resident, such as no force named), then the DNS records to publish."),
    "collect": ("alerts.cli.collect:collect",
                "Fetch every feed and calendar once and store new items."),
    "deliver": ("alerts.cli.deliver:deliver",
                "Send all that is due; rows waiting for a retry stay queued for the next run."),
    "demo": ("alerts.cli.demo:demo",
             "A self-contained tour: sample wards, feeds and residents, collected, digested "
             "and delivered to a maildir outbox."),
    "digest": ("alerts.cli.digest:digest",
               "Ward digests: what is new since each ward's last one."),
    "dkim": ("alerts.cli.dkim:dkim", "DKIM signing keys."),
    "inbound": ("alerts.cli.inbound:inbound",
                "Replies, bounces and auto-replies coming back to the product's addresses."),
    "init": ("alerts.cli.setup:init", "Create or migrate the database."),
    "post": ("alerts.cli.post:post",
             "Publish a post, advice or contact session to a ward, or an urgent alert."),
    "replies": ("alerts.cli.replies:replies", "Residents' replies to digests and alerts."),
    "run": ("alerts.cli.run:run",
            "Run the scheduler, the delivery loop and the web app until SIGINT or SIGTERM."),
    "schemes": ("alerts.cli.schemes:schemes",
                "Neighbourhood Watch schemes: a group of residents in one ward, kept by "
                "coordinators."),
    "sources": ("alerts.cli.sources:sources",
                "Feeds, calendars and data.police.uk neighbourhoods that a ward's items come "
                "from."),
    "status": ("alerts.cli.status:status",
               "Scheduled jobs (each one's last success, and a failing one's failures) and "
               "any that stalled; outbox depth by state, what is due, the "
               "oldest queued row, send rate, failures; inbound mail of the last day, what "
               "waits for a person, bounces no token vouched for, replies not yet forwarded; "
               "hard-bounce and complaint rates of the last 7 days, marked at Gmail's "
               "thresholds."),
    "subscribers": ("alerts.cli.subscribers:subscribers",
                    "Residents and the wards they subscribe to."),
    "suppression": ("alerts.cli.suppression:suppression",
                    "The suppression list: hard bounces, complaints, erasures and manual "
                    "entries."),
    "users": ("alerts.cli.users:users",
              "Officers, coordinators and administrators who sign in to the web pages."),
    "wards": ("alerts.cli.wards:wards", "Wards: the areas residents subscribe to."),
    "web": ("alerts.cli.run:web",
            "Serve the web app, and send what it queues, until SIGINT or SIGTERM (no "
            "scheduler)."),
    "worker": ("alerts.cli.run:worker",
               "Send what the outbox holds, continuously, until SIGINT or SIGTERM (no "
               "scheduler)."),
})


def main() -> None:
    # What the imports have made so far (click, SQLAlchemy, the settings' classes) lives as
    # long as the process: frozen, the collector's full passes no longer walk it (the one
    # that came while `alerts status` loaded its models took 30 ms of its 0.6 s); what the
    # command's own module loads is frozen too, once loaded (AlertsGroup.freeze_loaded).
    gc.freeze()
    cli.freeze_loaded = True
    cli(prog_name="alerts")


__all__ = ["cli", "main"]

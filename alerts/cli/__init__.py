"""The `alerts` command line: one module per command group, each a thin call into a service."""

from __future__ import annotations

from alerts.cli import (
    audit,
    check,
    collect,
    deliver,
    demo,
    digest,
    dkim,
    inbound,
    post,
    replies,
    run,
    schemes,
    setup,
    sources,
    status,
    subscribers,
    suppression,
    users,
    wards,
)
from alerts.cli.app import cli

for module in (setup, wards, sources, collect, post, digest, deliver, status, subscribers,
               suppression, inbound, replies, users, schemes, audit, demo, run, check, dkim):
    module.register(cli)


def main() -> None:
    cli(prog_name="alerts")


__all__ = ["cli", "main"]

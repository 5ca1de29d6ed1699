"""`alerts schemes add|list|members|import|export|add-member|remove-member`: Neighbourhood
Watch schemes, their coordinators and their member lists.

The member commands go through the coordinators' service (alerts.usecases.coordinators), as the
coordinators' pages do, so the same rules hold: the consent recorded, the double opt-in
email unless --confirmed declares prior consent (for addresses new to us only), an
invitation to accept for residents already subscribed, the same answer whatever became of
an address, an audit entry for each change. The operator at the command line may act on
any scheme. `members` lists those who joined.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alerts.accounts.access import command_line_principal
from alerts.accounts.audit import record
from alerts.accounts.users import Role, add_user, find_user
from alerts.cli.app import Runtime, cli_actor, fail, pass_runtime, print_json, print_table, warn
from alerts.core.db import transaction
from alerts.usecases.coordinators import (
    CoordinatorError,
    add_member,
    export_members,
    import_members,
    kept_schemes,
    remove_member,
)
from subscriptions.addresses import normalise_address
from subscriptions.base import utcnow
from subscriptions.schemes import add_scheme, get_scheme, list_members
from subscriptions.subscribers import Frequency


def _answer(scheme: str, *, many: bool, confirmed: bool) -> str:
    """What adding says, whatever became of each address."""
    who = f"each address that can join {scheme}" if many \
        else f"if this address can join {scheme}, it"
    done = ("added if it was new to us, or sent an invitation to accept if it is already "
            "subscribed" if confirmed
            else "sent an email to confirm or an invitation to accept; it is a member once "
                 "it has")
    return f"{who} has been {done}"


@click.group()
def schemes() -> None:
    """Neighbourhood Watch schemes: a group of residents in one ward, kept by coordinators."""


@schemes.command("add")
@click.argument("name")
@click.option("--ward", "ward_code", required=True, metavar="CODE")
@click.option("--coordinator", "coordinators", multiple=True, metavar="EMAIL",
              help="Who keeps the scheme (an account is made if need be; repeat for more).")
@pass_runtime
def add(runtime: Runtime, name: str, ward_code: str, coordinators: tuple[str, ...]) -> None:
    """Add a scheme to a ward, with its coordinators."""
    with transaction(runtime.sessions()) as session:
        scheme = add_scheme(session, name, ward_code)
        record(session, cli_actor(), "scheme.add", f"scheme {scheme.id}", f"ward {ward_code}")
        for email in coordinators:
            existing = find_user(session, email)
            user = add_user(session, email, Role.COORDINATOR, scheme_names=[scheme.name],
                            password=None)
            record(session, cli_actor(), "scheme.coordinator", f"scheme {scheme.id}",
                   f"user {user.id}" + ("" if existing else " (new account)"))
    click.echo(f"scheme {scheme.name!r} added to {ward_code}"
               + (f" with {len(coordinators)} coordinator(s); a new account signs in after "
                  "a password reset from the sign-in page" if coordinators else ""))


@schemes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, as_json: bool) -> None:
    """List schemes with their ward, their members (joined and still subscribed) and how
    many of them mail reaches (the counts the staff pages show)."""
    with runtime.sessions()() as session:
        rows = [{"name": s.name, "ward": s.ward_code, "members": s.members,
                 "receiving": s.confirmed}
                for s in kept_schemes(session, command_line_principal(cli_actor()))]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no schemes (add one with `alerts schemes add`)")
        return
    print_table(("SCHEME", "WARD", "MEMBERS", "RECEIVING EMAIL"),
                [(row["name"], row["ward"], row["members"], row["receiving"]) for row in rows])


@schemes.command("members")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def members(runtime: Runtime, name: str, as_json: bool) -> None:
    """List a scheme's members (those who joined) and the state of each (suppressed:
    never sent to)."""
    with runtime.sessions()() as session:
        rows = [{"email": m.email, "name": m.name, "status": m.state,
                 "frequency": m.frequency, "joined_at": m.joined_at.isoformat()}
                for m in list_members(session, get_scheme(session, name))]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no members yet")
        return
    print_table(("EMAIL", "STATUS", "FREQUENCY", "NAME"),
                [(row["email"], row["status"], row["frequency"], row["name"]) for row in rows])


@schemes.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True,
              help="Every resident in the file already gave consent in writing (recorded).")
@pass_runtime
def import_(runtime: Runtime, name: str, file: Path, confirmed: bool) -> None:
    """Add the residents of a CSV to scheme NAME (email required; name, frequency optional;
    ward and scheme, if present, must be the scheme's).

    Everyone in the file is recorded as having asked to join. Each address new to us is sent
    one confirmation email and nothing else until it confirms, or, with --confirmed, joins at
    once; each resident already subscribed is sent an invitation, and joins if they accept.
    Nothing overrides an unsubscribe, a suppression or an erasure. Bad lines are reported
    with their numbers and skipped; the good ones are added together.
    """
    now = utcnow()
    try:
        with transaction(runtime.sessions()) as session:
            scheme = get_scheme(session, name)
            result = import_members(session, runtime.settings, command_line_principal(cli_actor()),
                                    scheme.id, file.read_bytes(), resident_asked=True,
                                    prior_written=confirmed,
                                    where=f"alerts schemes import {file.name}", now=now)
    except CoordinatorError as exc:
        fail(f"{file}: {exc}")
    for error in result.errors:
        warn(f"{file}: {error}; row skipped")
    click.echo(f"{result.addresses} address(es) for {name} from {file}; skipped "
               f"{len(result.errors)} bad row(s)")
    click.echo(_answer(name, many=True, confirmed=confirmed))
    if result.errors:
        raise SystemExit(1)


@schemes.command("export")
@click.argument("name")
@pass_runtime
def export(runtime: Runtime, name: str) -> None:
    """Write scheme NAME's members as CSV to stdout, with status and consent."""
    with transaction(runtime.sessions()) as session:
        scheme = get_scheme(session, name)
        export_members(session, command_line_principal(cli_actor()), scheme.id, sys.stdout,
                       now=utcnow())


@schemes.command("add-member")
@click.argument("name")
@click.argument("email")
@click.option("--name", "resident_name", default="", help="How emails greet the resident.")
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]),
              default=Frequency.WEEKLY.value, show_default=True)
@click.option("--confirmed", is_flag=True,
              help="The resident already gave consent in writing (recorded as such).")
@pass_runtime
def add_member_(runtime: Runtime, name: str, email: str, resident_name: str, frequency: str,
                confirmed: bool) -> None:
    """Add EMAIL to scheme NAME, recorded as having asked to join (see `import` for what
    becomes of it; the answer is the same whatever did)."""
    try:
        with transaction(runtime.sessions()) as session:
            scheme = get_scheme(session, name)
            add_member(session, runtime.settings, command_line_principal(cli_actor()),
                       scheme.id, email=email, name=resident_name,
                       frequency=Frequency(frequency), resident_asked=True,
                       prior_written=confirmed, where="alerts schemes add-member",
                       now=utcnow())
    except CoordinatorError as exc:
        fail(f"--name: {exc}" if exc.field == "name" else str(exc))
    click.echo(_answer(name, many=False, confirmed=confirmed))


@schemes.command("remove-member")
@click.argument("name")
@click.argument("email")
@pass_runtime
def remove_member_(runtime: Runtime, name: str, email: str) -> None:
    """Unsubscribe EMAIL, a member of scheme NAME, from the scheme's ward."""
    address = normalise_address(email)
    with transaction(runtime.sessions()) as session:
        scheme = get_scheme(session, name)
        found = [m for m in list_members(session, scheme) if m.email == address]
        if not found:
            fail(f"no member of {scheme.name} has that address")
        remove_member(session, command_line_principal(cli_actor()), scheme.id,
                      found[0].subscription_id, now=utcnow())
    click.echo(f"unsubscribed from {name}'s ward")

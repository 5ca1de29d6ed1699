"""`alerts schemes add|list|members`: Neighbourhood Watch schemes and their coordinators."""

from __future__ import annotations

import click

from alerts.accounts.audit import record
from alerts.accounts.users import Role, add_user, find_user
from alerts.cli.app import Runtime, cli_actor, pass_runtime, print_json
from alerts.db import transaction
from subscriptions.schemes import add_scheme, get_scheme, list_members, list_schemes


def register(cli: click.Group) -> None:
    cli.add_command(schemes)


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
    """List schemes with their ward and number of members."""
    with runtime.sessions()() as session:
        rows = [{"name": s.name, "ward": s.ward.code, "members": len(list_members(session, s))}
                for s in list_schemes(session)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no schemes (add one with `alerts schemes add`)")
    for row in rows:
        click.echo(f"{row['name']:<40} {row['ward']:<8} {row['members']} member(s)")


@schemes.command("members")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def members(runtime: Runtime, name: str, as_json: bool) -> None:
    """List a scheme's members and the state of each."""
    with runtime.sessions()() as session:
        rows = [{"email": m.email, "name": m.name, "status": m.status,
                 "frequency": m.frequency, "joined_at": m.joined_at.isoformat()}
                for m in list_members(session, get_scheme(session, name))]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['email']:<36} {row['status']:<13} {row['frequency']:<10} {row['name']}")

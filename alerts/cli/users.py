"""`alerts users add|list|remove|set-password`: staff accounts for the web pages."""

from __future__ import annotations

import sys

import click

from alerts.accounts.audit import record
from alerts.accounts.users import (
    Role,
    UserError,
    add_user,
    check_password,
    get_user,
    list_users,
    remove_user,
    set_password,
)
from alerts.cli.app import Runtime, cli_actor, pass_runtime, print_json, print_table
from alerts.core.db import transaction


@click.group()
def users() -> None:
    """Officers, coordinators and administrators who sign in to the web pages."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    return check_password(password)


@users.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--ward", "wards", multiple=True, metavar="CODE",
              help="A ward the officer serves (repeat for more).")
@click.option("--scheme", "schemes", multiple=True, metavar="NAME",
              help="A scheme the coordinator keeps (repeat for more).")
@click.option("--name", default="", help="How the person is named on pages.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True,
              help="Set none now: the person uses the emailed reset link.")
@pass_runtime
def add(runtime: Runtime, email: str, role: str, wards: tuple[str, ...],
        schemes: tuple[str, ...], name: str, password_stdin: bool, no_password: bool) -> None:
    """Add a user (or give an existing one more wards or schemes)."""
    password = None if no_password else _read_password(password_stdin)
    with transaction(runtime.sessions()) as session:
        user = add_user(session, email, Role(role), ward_codes=list(wards),
                        scheme_names=list(schemes), name=name, password=password)
        record(session, cli_actor(), "user.add", f"user {user.id}",
               f"role {role}; wards {','.join(wards) or '-'}; schemes {','.join(schemes) or '-'}")
    click.echo(f"{role} {email} ready")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_runtime
def list_(runtime: Runtime, as_json: bool) -> None:
    """List users with their wards and schemes."""
    with runtime.sessions()() as session:
        rows = list_users(session)
    if as_json:
        print_json([row.__dict__ for row in rows])
        return
    if not rows:
        click.echo("no users (add one with `alerts users add`)")
        return
    print_table(("EMAIL", "ROLE", "WARDS OR SCHEMES", "PASSWORD"), [
        (row.email, row.role, ", ".join(row.wards or row.schemes) or "everything",
         "set" if row.has_password else "not yet") for row in rows])


@users.command("remove")
@click.argument("email")
@pass_runtime
def remove(runtime: Runtime, email: str) -> None:
    """Remove a user; their sessions end at once."""
    with transaction(runtime.sessions()) as session:
        user = get_user(session, email)
        ident = user.id
        remove_user(session, user)
        record(session, cli_actor(), "user.remove", f"user {ident}")
    click.echo("removed")


@users.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_runtime
def set_password_(runtime: Runtime, email: str, password_stdin: bool) -> None:
    """Set a user's password; their other sessions end."""
    password = _read_password(password_stdin)
    with transaction(runtime.sessions()) as session:
        user = get_user(session, email)
        set_password(session, user, password)
        record(session, cli_actor(), "user.set_password", f"user {user.id}")
    click.echo("password set")


__all__ = ["UserError", "users"]

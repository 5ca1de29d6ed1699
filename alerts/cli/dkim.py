"""`alerts dkim keygen`: a DKIM signing key and the DNS record that publishes it.

The key is written as PEM, mode 600, never over an existing file; the record is printed for
the operator to publish, and `[dkim]` then names the file (see config.example.toml).
"""

from __future__ import annotations

from pathlib import Path

import click

from alerts.cli.app import fail
from alerts.mail.dkim import RSA_BITS, dns_record, new_key, record_name, write_key


@click.group()
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command()
@click.option("--domain", required=True, help="The signing domain (d=), From's domain.")
@click.option("--selector", required=True, help="The selector (s=), e.g. alerts2026.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (PEM, mode 600); must not exist.")
@click.option("--ed25519", "ed25519_selector", metavar="SELECTOR", default=None,
              help="Also write an Ed25519 key (RFC 8463) to OUT.ed25519 under this selector.")
def keygen(domain: str, selector: str, out: Path, ed25519_selector: str | None) -> None:
    """Write a 2048-bit RSA key and print the TXT record to publish."""
    keys = [(out, selector, new_key())]
    if ed25519_selector:
        keys.append((out.with_name(out.name + ".ed25519"), ed25519_selector,
                     new_key(ed25519_key=True)))
    for file, _, _ in keys:
        if file.exists():
            fail(f"{file} exists; a DKIM key is never overwritten (choose another --out)")
    for file, key_selector, key in keys:
        try:
            write_key(key, file)
        except OSError as exc:
            fail(f"cannot write {file} ({exc.strerror})")
        kind = f"RSA {RSA_BITS}-bit" if file == out else "Ed25519"
        name, value = record_name(key_selector, domain), dns_record(key)
        # A zone file holds at most 255 characters a string: a long record is split.
        strings = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
        click.echo(f"Wrote the {kind} private key to {file} (mode 600). Publish this DNS "
                   "TXT record:")
        click.echo(f"  name:  {name}")
        click.echo(f"  value: {value}")
        click.echo(f"  zone file: {name}. IN TXT ( {strings} )")
    click.echo("Then turn signing on in the config:")
    click.echo(f'  [dkim]\n  domain = "{domain}"\n  selector = "{selector}"\n'
               f'  private_key_file = "{out.resolve()}"')
    if ed25519_selector:
        click.echo(f'  ed25519_selector = "{ed25519_selector}"\n'
                   f'  ed25519_private_key_file = "{keys[1][0].resolve()}"')

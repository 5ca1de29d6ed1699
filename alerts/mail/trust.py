"""What in the settings would stop the big mailbox providers trusting the product's mail, and
the DNS records that make it trusted (`alerts check`).

Gmail, Yahoo and Outlook.com want bulk mail authenticated by SPF and DKIM, aligned with the
From domain for DMARC, and one-click unsubscribe over HTTPS. The rules here are plain
functions over `Settings`; the one thing read from outside is the DKIM key file, for the
public key its record publishes (`alerts.mail.dkim` reads it). Domains are compared by
their organisational domain (the registrable part, from the public suffix list, offline), as
DMARC's relaxed alignment does.

Two of the problems no force may send with, whatever else it puts up with: an `http://`
base URL (every link in every email, List-Unsubscribe among them, would travel in clear)
and the relay's credentials sent in clear over the network. `refuse_unsafe_sending` stops
the commands that send or serve on them, outside the demo.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from alerts.core.config import DEFAULT_SECRET_KEY, ConfigError, ForceSettings, Settings
from alerts.mail.addresses import envelope_domain
from alerts.mail.dkim import dns_record, load_signer, read_key, record_name

# Domains whose DMARC policy (or whose providers) refuse mail claiming to be from them
# that they did not send themselves; `gmx.` is any GMX country domain.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com",
    "live.co.uk", "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "rocketmail.com",
    "aol.com", "aol.co.uk", "icloud.com", "me.com", "mac.com", "btinternet.com", "sky.com",
    "virginmedia.com", "talktalk.net", "proton.me", "protonmail.com", "pm.me", "mail.com",
    "yandex.com", "zoho.com", "fastmail.com",
})
_FREE_MAIL_PREFIXES = ("gmx.",)


class UnsafeToSend(ConfigError):
    """A command that sends or serves refuses to start: the message is the one problem."""


@dataclass(frozen=True)
class Problem:
    """One thing that stops mail being trusted: a stable `code` and what to do about it."""

    code: str
    message: str


@dataclass(frozen=True)
class DnsRecord:
    """A record to publish: `name` `type` `value`, and what it is for."""

    name: str
    type: str
    value: str
    purpose: str


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registrable part of `domain` (`reply.example.org` → `example.org`), lower-case."""
    name = domain.strip().rstrip(".").lower()
    return _suffixes().privatesuffix(name) or name


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def is_free_mail(domain: str) -> bool:
    organisational = organisational_domain(domain)
    return (organisational in FREE_MAIL or domain.lower() in FREE_MAIL
            or organisational.startswith(_FREE_MAIL_PREFIXES))


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def dkim_is_set(settings: Settings) -> bool:
    dkim = settings.dkim
    return bool(dkim.domain and dkim.selector and dkim.private_key_file)


def base_url_problem(settings: Settings) -> Problem | None:
    url = settings.web.base_url
    if url.lower().startswith("https://"):
        return None
    return Problem("base-url-not-https",
                   f"web.base_url {url!r} is not HTTPS: every link in every email, "
                   "List-Unsubscribe among them, would travel in clear, and Gmail, Yahoo and "
                   "Outlook want one-click unsubscribe over HTTPS; set an https:// base URL")


def from_problem(settings: Settings) -> Problem | None:
    domain = _domain_of(settings.mail.from_address)
    if not is_free_mail(domain):
        return None
    return Problem("from-free-mail",
                   f"mail.from_address is on {domain}, a free-mail domain whose DMARC policy "
                   "has mail from anyone else rejected or filed as spam; send from the "
                   "force's own domain")


def dkim_problem(settings: Settings) -> Problem | None:
    if not dkim_is_set(settings):
        return Problem("dkim-not-set",
                       "DKIM is not set ([dkim] domain, selector and private_key_file): "
                       "Gmail, Yahoo and Outlook refuse bulk mail without an aligned DKIM "
                       "signature; `alerts dkim keygen` makes a key")
    from_domain = _domain_of(settings.mail.from_address)
    if organisational_domain(settings.dkim.domain) == organisational_domain(from_domain):
        return None
    return Problem("dkim-not-aligned",
                   f"dkim.domain {settings.dkim.domain} is not aligned with the From domain "
                   f"{from_domain} (its organisational domain is "
                   f"{organisational_domain(from_domain)}): DMARC ignores the signature; "
                   "sign with the From domain or one under it")


def reply_domain_problem(settings: Settings) -> Problem | None:
    bounces = envelope_domain(settings.mail)
    from_domain = _domain_of(settings.mail.from_address)
    if organisational_domain(bounces) == organisational_domain(from_domain):
        return None
    return Problem("reply-domain-not-aligned",
                   f"mail.reply_domain {bounces} does not share the From domain's "
                   f"organisational domain ({organisational_domain(from_domain)}): the "
                   "bounces+ envelope sender's SPF pass does not count for DMARC; use a "
                   "domain under it, such as reply." + organisational_domain(from_domain))


def secret_key_problem(settings: Settings) -> Problem | None:
    if settings.web.secret_key != DEFAULT_SECRET_KEY:
        return None
    return Problem("default-secret-key",
                   f"web.secret_key is still the default {DEFAULT_SECRET_KEY!r}: anyone can "
                   "forge the signed links and addresses of every email; set a long random "
                   "value")


def credentials_problem(settings: Settings) -> Problem | None:
    mail = settings.mail
    if not mail.smtp_username or mail.security != "none" or is_loopback(mail.smtp_host):
        return None
    return Problem("smtp-credentials-in-clear",
                   f"mail.smtp_username is sent to {mail.smtp_host} with its password over a "
                   "connection that is not TLS (mail.smtp_security = \"none\"); set "
                   "smtp_security to \"starttls\" or \"tls\"")


def force_name_warning(settings: Settings) -> Problem | None:
    """No force named: every email's From name and masthead then end "…, your local police
    force", which reads like phishing. Not a problem for the providers, so only a warning."""
    name = settings.force.name.strip()
    if name and name != ForceSettings().name:
        return None
    return Problem("force-name-not-set",
                   "warning: force.name is not set, so mail reads "
                   f"\"{settings.force.sender('Riverside').strip()}\"; set force.name to the "
                   "force's name, e.g. \"Vale Police\"")


def problems(settings: Settings) -> list[Problem]:
    """Each problem of the settings that would stop mail being trusted, in a fixed order."""
    found = (rule(settings) for rule in (base_url_problem, from_problem, dkim_problem,
                                         reply_domain_problem, secret_key_problem,
                                         credentials_problem))
    return [problem for problem in found if problem is not None]


def refuse_unsafe_sending(settings: Settings) -> None:
    """Stop a command that sends or serves mail through the relay on an `http://` base URL
    or credentials in clear to a host that is not loopback; the demo and the maildir
    transport (tests, trials) are left to run."""
    if settings.demo or settings.mail.transport != "smtp":
        return
    for rule in (base_url_problem, credentials_problem):
        problem = rule(settings)
        if problem is not None:
            raise UnsafeToSend(problem.message)


def ready_to_send(settings: Settings) -> None:
    """What every command that sends checks before it starts, so that it stops with one line
    instead of failing at each pass: the secret key is not the default, nothing unsafe goes
    to the relay, and a configured DKIM key can be used."""
    settings.require_secret_key()
    refuse_unsafe_sending(settings)
    load_signer(settings.dkim)


def _is_host_name(host: str) -> bool:
    """Whether `host` can be an MX: a name, neither an address nor loopback."""
    if not host or is_loopback(host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _mx_host(settings: Settings) -> str:
    """The host whose MTA takes mail for the reply domain and hands it to the LMTP intake:
    the LMTP listener's host when it is a name, else the web's, else one to fill in."""
    lmtp_host = settings.inbound.lmtp.rpartition(":")[0].strip("[]")
    web_host = urlsplit(settings.web.base_url).hostname or ""
    for host in (lmtp_host, web_host):
        if _is_host_name(host):
            return host
    return "mail." + envelope_domain(settings.mail)


def _spf_value(settings: Settings) -> str:
    host = settings.mail.smtp_host
    if settings.mail.transport != "smtp" or is_loopback(host):
        # The local MTA relays: the addresses it sends from are those of the MX host here.
        return "v=spf1 mx ~all"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"v=spf1 a:{host} ~all"
    return f"v=spf1 ip{address.version}:{address} ~all"


def dns_records(settings: Settings, dkim_values: dict[str, str]) -> list[DnsRecord]:
    """The records to publish; `dkim_values` maps each DKIM selector to its TXT value."""
    dkim, bounces = settings.dkim, envelope_domain(settings.mail)
    organisational = organisational_domain(_domain_of(settings.mail.from_address))
    records = [
        DnsRecord(record_name(selector, dkim.domain), "TXT", value,
                  "DKIM: the public key receivers check the signature of every message with")
        for selector, value in dkim_values.items()
    ]
    records += [
        DnsRecord(bounces, "TXT", _spf_value(settings),
                  "SPF for the envelope sender (bounces+…@): list every address the relay "
                  "sends from, or include: your provider's record"),
        DnsRecord(f"_dmarc.{organisational}", "TXT",
                  f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{organisational}",
                  "DMARC: p=none to start, reading the reports; then quarantine, then reject"),
        DnsRecord(bounces, "MX", f"10 {_mx_host(settings)}.",
                  "replies and bounces: the host whose MTA hands them to "
                  "`alerts inbound serve` (LMTP)"),
    ]
    return records


def _dkim_keys(settings: Settings) -> list[tuple[str, str, str]]:
    """Each configured DKIM selector, its key file and that file's key name."""
    dkim = settings.dkim
    keys = []
    if dkim_is_set(settings):
        keys.append((dkim.selector, dkim.private_key_file, "dkim.private_key_file"))
    if dkim.domain and dkim.ed25519_selector and dkim.ed25519_private_key_file:
        keys.append((dkim.ed25519_selector, dkim.ed25519_private_key_file,
                     "dkim.ed25519_private_key_file"))
    return keys


@dataclass(frozen=True)
class TrustReport:
    problems: list[Problem]
    records: list[DnsRecord]
    # What does not stop mail being trusted but reads wrong to a resident.
    warnings: list[Problem] = field(default_factory=list)


def check(settings: Settings) -> TrustReport:
    """The problems of the settings, and the records to publish (a DKIM key file that cannot
    be read is one more problem, and its record is left out)."""
    found = problems(settings)
    values: dict[str, str] = {}
    for selector, path, name in _dkim_keys(settings):
        try:
            key = read_key(path, name, rsa_only=name == "dkim.private_key_file")
        except ConfigError as exc:
            found.append(Problem("dkim-key-unusable", str(exc)))
        else:
            values[selector] = dns_record(key)
    warnings = [w for w in (force_name_warning(settings),) if w is not None]
    return TrustReport(found, dns_records(settings, values), warnings)


def zone_line(record: DnsRecord) -> str:
    """A record as a zone file writes it; a TXT value in strings of at most 255 characters."""
    value = record.value
    if record.type == "TXT":
        value = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{record.name}. {record.type} {value}"

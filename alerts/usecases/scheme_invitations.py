"""Invitations to join a Neighbourhood Watch scheme, for residents already subscribed to its
ward. Adding such an address never puts the resident on the scheme's list (see
`subscriptions.schemes.join_scheme`): they are emailed this invitation, and join only if they
accept it. Whoever added them is told the same whatever happened.

The link's token is an itsdangerous timed signature with a salt of its own over the
subscription and the scheme, and a seal of the subscription's nonce (`subscriptions.links`),
so a link stops working when it expires or when its subscription's nonce changes. It opens
a page whose one button accepts: opening the link changes nothing, since mail scanners open
every link in an email. The email goes through the outbox like a confirmation email, and
shares its limit: at most one of either to an address an hour. Accepting confirms a
subscription still waiting to be, and then brings the one welcome a confirmation brings
(`alerts.usecases.welcome`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.accounts.audit import record
from alerts.core.config import Settings
from alerts.delivery.fanout import queue_for_subscriber
from alerts.mail.marks import INVITE_URL_MARK
from alerts.mail.messages import Message, MessageKind
from alerts.mail.render import Rendered, render_email
from alerts.usecases.confirmations import CONFIRM_PRIORITY
from alerts.usecases.welcome import hold_resident, welcome_on_confirming
from subscriptions.languages import Language, effective_language
from subscriptions.links import Purpose, nonces_in, open_sealed_link, sealed_link
from subscriptions.schemes import Scheme, accept_invitation, invitation_open, is_member
from subscriptions.subscribers import Status, Subscription
from subscriptions.web_consent import claim_confirmation_slots

INVITE_SALT = "alerts.scheme-invitation"
INVITE_MAX_AGE_DAYS = 7
INVITE_PATH = "/scheme-invitation/"


def invitation_token(settings: Settings, subscription: Subscription, scheme_id: int) -> str:
    return sealed_link(settings.web.secret_key, INVITE_SALT, Purpose.SCHEME_INVITATION,
                       subscription.id, subscription.nonce, scheme=scheme_id)


@dataclass(frozen=True)
class Invitation:
    subscription: Subscription
    scheme: Scheme


def read_invitation(session: Session, settings: Settings, token: str, *,
                    max_age_seconds: int = INVITE_MAX_AGE_DAYS * 86400) -> Invitation | None:
    """The subscription and scheme a genuine, unexpired link names, while the subscription's
    nonce is the one the link was sealed with; None otherwise."""
    data = open_sealed_link(settings.web.secret_key, INVITE_SALT, Purpose.SCHEME_INVITATION,
                            token, nonces_in(session, Subscription),
                            max_age_seconds=max_age_seconds)
    scheme_id = None if data is None else data.get("scheme")
    if data is None or not isinstance(scheme_id, int):
        return None
    subscription = session.get(Subscription, data["s"])
    if subscription is None:
        return None
    scheme = session.get(Scheme, scheme_id)
    return Invitation(subscription, scheme) if scheme is not None else None


@dataclass(frozen=True)
class InvitationView:
    """What the invitation's page shows."""

    scheme_name: str
    ward_name: str
    member: bool  # joined already (the button was pressed before)
    confirms: bool  # joining also confirms a subscription still waiting to be


def _view(invitation: Invitation) -> InvitationView:
    subscription, scheme = invitation.subscription, invitation.scheme
    return InvitationView(scheme.name, scheme.ward.name, member=is_member(subscription, scheme),
                          confirms=subscription.status == Status.PENDING)


def preview_invitation(session: Session, settings: Settings,
                       token: str) -> InvitationView | None:
    """What a link invites to, changing nothing; None if it is not genuine, has expired or
    can no longer be accepted."""
    invitation = read_invitation(session, settings, token)
    if invitation is None or not invitation_open(session, invitation.subscription,
                                                 invitation.scheme):
        return None
    return _view(invitation)


def accept(session: Session, settings: Settings, token: str, *,
           now: datetime) -> InvitationView | None:
    """The resident presses the button: they join the scheme (see
    `subscriptions.schemes.accept_invitation`); None, and nothing changes, if the link is not
    genuine, has expired or can no longer be accepted. Pressing it again changes nothing.
    A subscription that was waiting is confirmed, and the press that confirms it queues the
    resident's one welcome email, as a confirmation's button does."""
    invitation = read_invitation(session, settings, token)
    if invitation is None:
        return None
    subscription = invitation.subscription
    hold_resident(session, subscription.subscriber_id)
    session.refresh(subscription)  # as a press that went first left it
    before = _view(invitation)
    if not accept_invitation(session, subscription, invitation.scheme, now=now):
        return None
    if not before.member:
        record(session, "resident (scheme invitation)", "scheme.member.join",
               f"subscription {subscription.id}",
               f"scheme {invitation.scheme.id}; accepted an invitation", now=now)
    welcome_on_confirming(session, settings, subscription.subscriber_id, [subscription.id],
                          confirmed=before.confirms, now=now)
    return _view(invitation)


def render_invitation(settings: Settings, *, scheme_name: str, ward_name: str,
                      invite_url: str, now: datetime,
                      language: Language = Language.ENGLISH) -> Rendered:
    """The invitation email: what the scheme is, what joining means, and the link."""
    return render_email(
        "scheme-invitation",
        lambda t: t.gettext("Invitation to join %(scheme_name)s") % {"scheme_name": scheme_name},
        settings, now=now, language=language, scheme_name=scheme_name, ward_name=ward_name,
        invite_url=invite_url, valid_days=INVITE_MAX_AGE_DAYS)


@dataclass(frozen=True)
class Invited:
    queued: int
    # Addresses sent a confirmation or an invitation in the last hour: none is sent now.
    held_back: int


def queue_invitations(session: Session, settings: Settings, scheme: Scheme,
                      subscription_ids: Sequence[int], *, now: datetime) -> Invited:
    """Queue the scheme's invitation for each of these subscriptions (in its ward), each with
    its own link, in its resident's language; at most one confirmation or invitation an hour
    per address. The caller commits.

    The message is of the confirmation's kind, the one kind the sender lets reach an address
    still waiting to confirm; a suppressed address gets nothing."""
    subscriptions = {s.subscriber_id: s for s in session.scalars(
        select(Subscription).where(Subscription.id.in_(list(subscription_ids)),
                                   Subscription.ward_id == scheme.ward_id))}
    claimed = claim_confirmation_slots(session, list(subscriptions), now=now)
    base = settings.web.base_url.rstrip("/")
    rendered: dict[Language, Rendered] = {}
    queued = 0
    for subscriber_id in sorted(claimed):
        subscription = subscriptions[subscriber_id]
        language = effective_language(subscription.subscriber.language, scheme.ward.language)
        if language not in rendered:
            rendered[language] = render_invitation(
                settings, scheme_name=scheme.name, ward_name=scheme.ward.name,
                invite_url=INVITE_URL_MARK, now=now, language=language)
        url = f"{base}{INVITE_PATH}{invitation_token(settings, subscription, scheme.id)}"
        own = rendered[language].with_own_link(INVITE_URL_MARK, url)
        message = Message(
            ward_id=scheme.ward_id, kind=MessageKind.CONFIRM, subject=own.subject,
            html=own.html, text=own.text, calendar=None,
            language=language.value, created_at=now)
        session.add(message)
        session.flush()
        queued += queue_for_subscriber(session, message, subscriber_id,
                                       priority=CONFIRM_PRIORITY, now=now)
    return Invited(queued, len(subscriptions) - len(claimed))

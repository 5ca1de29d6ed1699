"""What every officer's service starts from, for the pages and `alerts post` alike: the ward a
member of staff names, if it is theirs to use (`ward_for`), and the two errors a service
raises for what was asked: `InputError` (a form's fields, each with what is wrong; 400) and
`NotFound` (no such ward or thread; 404).

Kept apart from `alerts.usecases.officers` (the inbox, replies, votes, digest previews) so
that posting, which needs only these, loads none of that.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from alerts.accounts.access import Principal, require_ward
from alerts.core.errors import AlertsError
from subscriptions.wards import Ward, find_ward


class NotFound(AlertsError, LookupError):
    """No such ward or thread (the page answers 404)."""

    http_status = 404


class InputError(AlertsError, ValueError):
    """What an officer wrote cannot be used; `errors` maps each form field to what is wrong."""

    http_status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def ward_for(session: Session, who: Principal, code: str) -> Ward:
    """The ward with this code, if the person may use it."""
    ward = find_ward(session, code)
    if ward is None:
        raise NotFound(f"no ward with code {code!r}")
    require_ward(who, ward.id)
    return ward

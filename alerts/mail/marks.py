"""Own-link marks: an email rendered once for many recipients (a confirmation, a scheme
invitation) holds a mark where each recipient's own link goes, and `with_own_link` puts the
link there, escaped for the HTML part, as each copy is queued.

The marks each delivery fills (unsubscribe, preferences, "was this useful?") are
`alerts.mail.messages`'s, filled by `alerts.mail.mime` as each copy is sent.
"""

from __future__ import annotations

import html

from alerts.mail.render import Rendered

CONFIRM_URL_MARK = "__ALERTS_CONFIRM_URL__"
INVITE_URL_MARK = "__ALERTS_INVITE_URL__"


def with_own_link(rendered: Rendered, mark: str, url: str) -> Rendered:
    """`rendered` with `url` where `mark` is, in both its HTML and its text."""
    return Rendered(subject=rendered.subject,
                    html=rendered.html.replace(mark, html.escape(url, quote=True)),
                    text=rendered.text.replace(mark, url), calendar=rendered.calendar)

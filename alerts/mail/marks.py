"""Link marks: an email is rendered once for many recipients, so where each recipient's own
link goes it holds a mark instead, filled later with that recipient's link.

Two times of filling: the marks of every delivery (unsubscribe, preferences, "was this
useful?") are filled by `fill_links` as each copy is sent (`alerts.mail.mime`), or with
stand-ins where staff preview a message; the own-link marks of a confirmation or a scheme
invitation (`CONFIRM_URL_MARK`, `INVITE_URL_MARK`) are filled by `Rendered.with_own_link`
(`alerts.mail.render`) as each copy is queued.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Rendered bodies hold these markers where each recipient's own signed links go;
# delivery swaps them in, so a message is rendered once however many it reaches.
UNSUBSCRIBE_MARK = "__ALERTS_UNSUBSCRIBE_URL__"
PREFERENCES_MARK = "__ALERTS_PREFERENCES_URL__"
# "Was this useful?": one mark per item and answer, `__ALERTS_USEFUL_<item id>_yes__` or
# `_no__`, written by templates/email/_useful.*; delivery makes each a signed vote link
# (alerts.mail.vote_links). Item id 0 stands for the one item of the message (an urgent alert is
# rendered before its item is stored).
USEFUL_MARK = r"__ALERTS_USEFUL_[0-9]{1,18}_(?:yes|no)__"
_USEFUL = re.compile(r"__ALERTS_USEFUL_([0-9]{1,18})_(yes|no)__")
THIS_MESSAGES_ITEM = 0


def fill_links(body: str, unsubscribe: str, preferences: str,
               useful: str | Callable[[int, bool], str] = "#") -> str:
    """A rendered body with these links where its marks are: a resident's own signed links
    at delivery, or stand-ins where staff preview a message. `useful` makes each vote link
    from (item id, answer) at delivery; a plain string is the stand-in for every one, so no
    mark is ever left in a body."""
    def vote(mark: re.Match[str]) -> str:
        return useful(int(mark[1]), mark[2] == "yes") if callable(useful) else useful

    return _USEFUL.sub(vote, body).replace(UNSUBSCRIBE_MARK, unsubscribe).replace(
        PREFERENCES_MARK, preferences)


def link_for_mark(mark: str, unsubscribe: str, preferences: str,
                  useful: Callable[[int, bool], str]) -> str:
    """The link for one whole mark, as `fill_links` puts it in a body."""
    if mark == UNSUBSCRIBE_MARK:
        return unsubscribe
    if mark == PREFERENCES_MARK:
        return preferences
    vote = _USEFUL.fullmatch(mark)
    if vote is None:
        raise ValueError(f"not a link mark: {mark!r}")
    return useful(int(vote[1]), vote[2] == "yes")


CONFIRM_URL_MARK = "__ALERTS_CONFIRM_URL__"
INVITE_URL_MARK = "__ALERTS_INVITE_URL__"


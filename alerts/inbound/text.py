"""What a resident wrote in a reply: the body read as text, and the new words split from the rest.

This module owns two pure steps (no I/O, never raises on odd mail):

- `body_text` picks the part a person wrote (text/plain, else HTML read as text, never an
  attachment) and decodes it, whatever charset it claims;
- `split_reply` separates the new text from the quoted history and the signature. The
  `mail-parser-reply` package finds where the history starts (Gmail's and Apple Mail's
  "On ... wrote:", Outlook's "From:/Sent:/To:/Subject:" block, "-----Original Message-----")
  and where a signature starts; this module adds the rules it lacks: lines quoted with ">",
  text written below a ">" quote (bottom-posting and inline answers), and Welsh headers.

When in doubt, words stay in `new`: it is what the ward team reads and what
`alerts.inbound.signals` scans for an emergency, so an extra line is cheap and a lost one is not.
"""

from __future__ import annotations

import codecs
import html
import re
from dataclasses import dataclass
from email.message import EmailMessage, MIMEPart
from typing import Any

import nh3
from mailparser_reply import EmailMessage as ParsedBody

__all__ = ["UNREAD_NOTE", "ReplyText", "body_text", "html_to_text", "new_text", "split_reply"]

# Ends the stored text of a reply read only in part (`alerts.inbound.mail.READ_BYTES`).
UNREAD_NOTE = ("[This email was too long to read in full: only its start was read here. "
               "The whole email is kept, and attached when it is forwarded.]")


@dataclass(frozen=True)
class ReplyText:
    # What the resident wrote this time: trailing whitespace stripped, line breaks kept.
    new: str
    # Everything else the body held: quoted history, its header line, the signature.
    quoted: str


def new_text(message: EmailMessage) -> str:
    """The words the sender wrote in this message, without quotes or signature."""
    return split_reply(body_text(message)).new


# ---------------------------------------------------------------------------------------------
# Reading the body
# ---------------------------------------------------------------------------------------------

def body_text(message: EmailMessage, *, cut: bool = False) -> str:
    """The text of the best body part, LF line ends, or "" when there is no text part.

    `cut`: the message was read only in part (`InboundMail.truncated`), so its text may end
    inside a character; that character is dropped rather than the charset doubted.
    """
    plain = message.get_body(preferencelist=("plain",))
    if isinstance(plain, MIMEPart):
        text = _plain_text(plain, cut)
        if text.strip():
            return text
    # Some clients send an empty text/plain beside the HTML that holds the words.
    rich = message.get_body(preferencelist=("html",))
    if isinstance(rich, MIMEPart):
        return html_to_text(_decoded(rich, cut))
    return ""


def _decoded(part: MIMEPart, cut: bool) -> str:
    """The part's payload as text; a wrong or unknown charset costs characters, never the text."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    declared = part.get_content_charset() or "us-ascii"
    # Declared first; then UTF-8, which most mislabelled mail is; then Windows-1252, what
    # "unknown-8bit" from Outlook usually means. Only the last resort replaces bytes.
    for charset in (declared, "utf-8", "cp1252"):
        try:
            text = _decoded_as(payload, charset, cut)
        except (LookupError, UnicodeDecodeError):
            continue
        break
    else:
        text = payload.decode("utf-8", errors="replace")
    return _normalise_line_ends(text)


def _decoded_as(payload: bytes, charset: str, cut: bool) -> str:
    """The payload in `charset`; when `cut`, less a character cut off at its very end."""
    codecs.lookup(charset)
    try:
        return payload.decode(charset)
    except UnicodeDecodeError as error:
        if not cut or error.end < len(payload) or len(payload) - error.start > 3:
            raise
        return payload[:error.start].decode(charset)


def _normalise_line_ends(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _plain_text(part: MIMEPart, cut: bool) -> str:
    text = _decoded(part, cut)
    if str(part.get_param("format", "", header="content-type")).lower() == "flowed":
        delsp = str(part.get_param("delsp", "no", header="content-type")).lower() == "yes"
        text = _unflow(text, delsp=delsp)
    return text


_QUOTE_MARKS = re.compile(r"^>+")


def _unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of RFC 3676 format=flowed, keeping the sender's hard ones."""
    lines: list[str] = []
    carry: tuple[int, str] | None = None
    for raw in text.split("\n"):
        marks = _QUOTE_MARKS.match(raw)
        depth = len(marks.group()) if marks else 0
        line = raw[depth:]
        if line.startswith(" "):  # space-stuffing
            line = line[1:]
        if carry is not None and carry[0] == depth:
            line = carry[1] + line
        elif carry is not None:
            lines.append(_quoted_line(*carry))
        carry = None
        if line.endswith(" ") and line != "-- ":
            carry = (depth, line[:-1] if delsp else line)
            continue
        lines.append(_quoted_line(depth, line))
    if carry is not None:
        lines.append(_quoted_line(*carry))
    return "\n".join(lines)


def _quoted_line(depth: int, line: str) -> str:
    return f"{'> ' * depth}{line}" if depth else line


# Private-use characters stand for the edges of a <blockquote> while nh3 strips the tags.
_OPEN_QUOTE, _CLOSE_QUOTE = "\ue000", "\ue001"
_KEPT_TAGS = {"p", "div", "br", "li", "blockquote", "tr", "td", "th", "hr",
              "h1", "h2", "h3", "h4", "h5", "h6"}
_DROPPED_CONTENT = {"script", "style", "title", "head", "template", "noscript"}
_LINE_BREAKS = re.compile(r"<br\s*/?>|</(?:p|div|li|tr|h[1-6])>|<(?:li|hr)\s*/?>")
_CELL_ENDS = re.compile(r"</t[dh]>")


def html_to_text(markup: str) -> str:
    """HTML read as a person would see it, with <blockquote> content quoted by "> "."""
    markup = markup.replace(_OPEN_QUOTE, "").replace(_CLOSE_QUOTE, "")
    # First pass: nh3 repairs the markup and leaves only bare structural tags, so the
    # patterns below only ever see lower-case tags without attributes.
    markup = nh3.clean(markup, tags=_KEPT_TAGS, attributes={},
                       clean_content_tags=_DROPPED_CONTENT)
    markup = re.sub(r"\s+", " ", markup)  # source line breaks mean nothing in HTML
    markup = markup.replace("<blockquote>", f"\n{_OPEN_QUOTE}\n")
    markup = markup.replace("</blockquote>", f"\n{_CLOSE_QUOTE}\n")
    markup = _LINE_BREAKS.sub("\n", markup)
    markup = _CELL_ENDS.sub(" ", markup)
    text = html.unescape(nh3.clean(markup, tags=set()))
    text = text.replace("\xa0", " ")

    lines: list[str] = []
    depth = 0
    for line in text.split("\n"):
        line = line.strip()
        if line in (_OPEN_QUOTE, _CLOSE_QUOTE):
            while lines and not lines[-1].replace(">", "").strip():
                lines.pop()
            depth = depth + 1 if line == _OPEN_QUOTE else max(depth - 1, 0)
        elif line or (lines and lines[-1].replace(">", "").strip()):
            lines.append(f"{'> ' * depth}{line}".rstrip())
    return "\n".join(lines).strip("\n")


# ---------------------------------------------------------------------------------------------
# Splitting the new text from the rest
# ---------------------------------------------------------------------------------------------

def split_reply(body: str) -> ReplyText:
    """Separate the text the resident wrote from quoted history and signature.

    A body with no quote at all is all new; a body that is only a quote has `new` == "".
    """
    new, rest = _split(_normalise(body))
    return ReplyText(new=_join(new), quoted=_join(rest))


def _normalise(body: str) -> list[str]:
    # The parser strips every line itself; doing it first keeps its line numbers ours.
    return [line.strip() for line in _normalise_line_ends(body).strip().split("\n")]


def _join(parts: list[list[str]]) -> str:
    texts = ["\n".join(part).strip("\n") for part in parts]
    return "\n\n".join(text for text in texts if text.strip())


# A reply with text below more quotes than this is not one a person wrote; past it, the rest
# counts as new rather than cost another pass of the parser.
_MAX_QUOTES = 20


def _split(lines: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """(new parts, other parts) of normalised lines, in order."""
    new: list[list[str]] = []
    rest: list[list[str]] = []
    for _ in range(_MAX_QUOTES):
        found = _first_header(lines)
        start, end = found if found is not None else (len(lines), len(lines))
        written, signature = _without_signature(lines[:start])
        unquoted, quoted = _without_quoted_lines(written)
        new.append(unquoted)
        rest += [quoted, signature]
        if found is None:
            return new, rest
        after = lines[end:]
        first = next((n for n, line in enumerate(after) if line), None)
        if first is None or not after[first].startswith(">"):
            # History quoted without ">" (Outlook): everything below the header is history.
            rest.append(lines[start:])
            return new, rest
        stop = first
        while stop < len(after) and (after[stop].startswith(">") or not after[stop]):
            stop += 1
        rest.append(lines[start:end + stop])
        # What follows a ">" quote was written below it (bottom-posting or an inline answer).
        lines = after[stop:]
    new.append(lines)
    return new, rest


# The parser's patterns take time in the square of a line's length, of a run of blank lines,
# and of an "On" line (its "On ... wrote:" pattern). So it is shown a copy, line for line, in
# which what cannot start a header or signature is a placeholder: a line longer than any of
# them, a blank line after two, an "On" line not followed by "wrote:" within the two lines its
# pattern spans. That changes nothing it finds, and a crafted message cannot make it take seconds.
_MAX_PARSED_LINE = 250
_ON_LINE = re.compile(r"(?:> ?)*On\s", re.IGNORECASE)
_PLACEHOLDER = "~"  # a character none of the parser's patterns mentions
# Below this many lines nobody is still writing a reply; past it, the text counts as new.
_MAX_PARSED_LINES = 5000
# A rule of underscores or hyphens (Outlook's, above its header) is hidden from the parser
# too: it deletes such lines from its copy of the text, which would shift the line numbers.
_RULE = re.compile(r"[_-]{32,}")


def _shown(lines: list[str]) -> list[str]:
    lines = lines[:_MAX_PARSED_LINES]
    return [_PLACEHOLDER if _hidden(lines, n) else line for n, line in enumerate(lines)]


def _hidden(lines: list[str], n: int) -> bool:
    line = lines[n]
    if not line:
        return n >= 2 and not lines[n - 1] and not lines[n - 2]
    if len(line) > _MAX_PARSED_LINE or _RULE.fullmatch(line):
        return True
    if _ON_LINE.match(line):
        return not any(following.lower().endswith("wrote:") for following in lines[n:n + 2])
    return False


def _parsed(shown: list[str]) -> Any:
    # keep_hyphen_lists: a line starting "- " is a resident's list item, not a signature.
    return ParsedBody(text="\n".join(shown), languages=["en"], keep_hyphen_lists=True).read()


# Welsh reply headers, which mail-parser-reply has no language for: Gmail's
# "Ar <date>, <name> ysgrifennodd:" and Outlook's "Oddi wrth: / Anfonwyd: / At: / Pwnc:".
_WELSH_HEADER = re.compile(
    r"^(?:> ?)*Ar\s[^\n]*(?:\n[^\n]*)?\sysgrifennodd:$"
    r"|^(?:> ?)*[* ]*Oddi wrth:.*(?:\n(?:> ?)*[* ]*(?:Anfonwyd|Dyddiad|At|Cc|Pwnc):.*)+",
    re.MULTILINE,
)


def _first_header(lines: list[str]) -> tuple[int, int] | None:
    """The lines [start, end) of the first reply header, if there is one."""
    if not any(lines):
        return None  # blank lines (what is left below a quote, often): nothing to parse
    found: list[tuple[int, int]] = []
    parsed = _parsed(_shown(lines))
    text = str(parsed.text)
    header = next((str(reply.headers) for reply in parsed.replies if reply.headers), "")
    for start, matched in ((text.find(header) if header else -1, header),
                           *((m.start(), m.group()) for m in _WELSH_HEADER.finditer(text))):
        if start >= 0:
            first = text.count("\n", 0, start)
            found.append((first, first + matched.count("\n") + 1))
    return min(found) if found else None


_SIGN_OFF = re.compile(
    r"(?:kind regards|best regards|warm regards|regards|many thanks|thanks|thank you|best|"
    r"all the best|cheers)[\s,.!]*",
    re.IGNORECASE,
)
_DELIMITER = re.compile(r"[-_]{2}")
_SENT_FROM = re.compile(r"(?:sent from my|get outlook for)\b", re.IGNORECASE)


def _without_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    """(lines, signature lines), where the parser found a signature this module trusts."""
    end = len(lines)
    while end and (not lines[end - 1] or _RULE.fullmatch(lines[end - 1])):
        end -= 1  # blank lines, and Outlook's rule above the header the text was cut at
    lines, rule = lines[:end], lines[end:]
    if not lines or len(lines) > _MAX_PARSED_LINES:
        return lines, rule
    if not any(_may_start_signature(line) for line in lines):
        return lines, rule  # no cut the parser could find would be trusted: not asked
    shown = _shown(lines)
    replies = _parsed(shown).replies
    if len(replies) != 1 or replies[0].headers or not replies[0].signatures:
        return lines, rule
    signature = str(replies[0].signatures)
    cut = len(shown) - signature.count("\n") - 1
    if cut >= 0 and "\n".join(shown[cut:]) == signature and _is_signature(lines[cut:]):
        return lines[:cut], lines[cut:] + rule
    return lines, rule


def _may_start_signature(line: str) -> bool:
    """Whether `_is_signature` could accept a signature beginning at `line`."""
    first = line.lstrip("> ")
    return bool(_DELIMITER.fullmatch(first) or _SENT_FROM.match(first)
                or _SIGN_OFF.fullmatch(first))


def _is_signature(lines: list[str]) -> bool:
    """Whether the parser's cut is a signature and not the resident's own words.

    The parser cuts at any line starting "Thanks," or "Sent from my" and takes the rest of
    the message with it; "Thanks, but someone is in my garden now" must stay in `new`.
    """
    first = lines[0].lstrip("> ")
    if _DELIMITER.fullmatch(first):
        return True  # "-- " (RFC 3676): what follows was set apart on purpose
    if _SENT_FROM.match(first):
        if len(first.split()) > 8:
            return False
    elif not _SIGN_OFF.fullmatch(first):
        return False
    # After a sign-off: a name, an address, a phone number; not sentences.
    below = [line for line in lines[1:] if line]
    return len(below) <= 6 and not any(
        len(line) > 80 or line.endswith((".", "!", "?")) for line in below
    )


def _without_quoted_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """(unquoted lines, ">" lines) of lines that hold no reply header."""
    new = [line for line in lines if not line.startswith(">")]
    quoted = [line for line in lines if line.startswith(">")]
    return new, quoted

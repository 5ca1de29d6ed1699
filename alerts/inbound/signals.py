"""Whether a resident's reply reads like a crime report or an emergency: the domain rule.

A reply is not a way to report crime, and residents do not always know that. So a reply whose
own words carry one of the signals in `SIGNALS` gets the how-to-report answer (999 in an
emergency, 101 or online otherwise) at once, and is flagged for the ward team.

The caller passes only the new text the resident wrote (`alerts.inbound.text.new_text`), never
the quoted digest: a digest naturally says "burglary" and "break-in", and would flag every reply.

This module owns the list of signals and nothing else: pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SIGNALS", "Signal", "emergency_signals", "reads_like_a_report"]


@dataclass(frozen=True)
class Signal:
    # A short label, safe to store and show to the ward team ("break-in", "weapon").
    label: str
    # Regular expressions matched case-insensitively, each as a whole word or phrase, in
    # text whose runs of whitespace (line breaks included) are one space each.
    patterns: tuple[str, ...]


_SUBJECT = r"(?:someone|somebody|some one|a man|a woman|a lad|men|people|a group|they|he|she)"
_PLACE = r"(?:garden|house|home|flat|shed|garage|yard|drive|driveway|hallway|street|road|door)"
_PARTNER = r"(?:partner|husband|wife|boyfriend|girlfriend|ex|ex-partner|ex-husband|ex-wife)"
_CHILD = r"(?:child|kid|toddler|baby|son|daughter|boy|girl)"
_VEHICLE = r"(?:car|van|bike|bicycle|motorbike|scooter|moped|catalytic converter)"

SIGNALS: tuple[Signal, ...] = (
    # 999/112 only as a number of their own: not in "01234 999888", "£999", "999.00",
    # "0800 999 123". 112 also only after "call"/"ring"/"dial": alone it is a house number.
    Signal("999", (
        r"(?<![\w£$€#+])(?<!\d[ .,-])999(?![.,]?\d)(?![a-z%])",
        r"(?:call|called|calling|ring|rang|ringing|dial|dialled|dialed|phone|phoned) 112",
        r"nine[ -]nine[ -]nine",
    )),
    Signal("emergency", (
        r"emergency", r"emergencies", r"send help", r"need help now", r"help me please",
        r"please help me", r"help!+",
        r"h?argyfwng",  # Welsh: emergency
    )),
    Signal("happening now", (
        r"happening (?:right )?now", r"right now", r"as we speak", r"at this very moment",
        r"going on (?:right )?now",
        r"outside (?:my|our|the) (?:house|home|flat|door|window|gate) (?:right )?now",
        r"d?digwydd (?:nawr|rŵan|rwan)",  # Welsh: happening now (south, north)
    )),
    # Not bare "burglary": it is the digest's own category name, and residents use it to
    # ask about a digest item. "Broke in", "burgled", "break-in" are how people tell of
    # something that happened to them.
    Signal("break-in", (
        r"break(?:s|ing)? in(?:to)?", r"broken in(?:to)?", r"broke in(?:to)?",
        r"break-ins?", r"burgled", r"burgling", r"burglars?", r"burglary in progress",
        r"intruders?", r"trying (?:the |my |our )?(?:front |back )?doors?",
        r"trying (?:the |my |our )?(?:door|car door)(?:s| handles?)",
        r"(?:t|d|nh|th)orr\w* (?:\w+ )?i mewn",  # Welsh: break in (torri, torrodd, torrwyd)
    )),
    Signal("assault", (
        r"attacked", r"attacking", r"assaulted", r"assaulting", r"assault",
        r"beaten up", r"beat (?:me|him|her|them|us|someone) up", r"beating (?:\w+ )?up",
        r"punched", r"punching", r"kicked (?:me|him|her|them|us)", r"hit (?:me|him|her|us)",
        r"stabbed", r"stabbing", r"glassed", r"mugged", r"strangled",
        r"h?ymosod\w*",  # Welsh: attack, attacked (ymosod, ymosododd, ymosodwyd)
    )),
    Signal("threat", (
        r"threatened", r"threatening", r"threats?", r"intimidat\w+",
        r"(?:going to|gonna|will|would|said he'd|said she'd|said they'd) "
        r"(?:kill|hurt|stab|shoot|batter) (?:me|us|him|her|them)",
        r"(?:b|f|m)yg(?:wth|yth)\w*",  # Welsh: threaten, threat (bygwth, bygythiad)
    )),
    # Not "possession of weapons": that is a digest category name too.
    Signal("weapon", (
        r"knife", r"knives", r"machete", r"blade", r"(?<!possession of )weapons?",
        r"gun", r"guns", r"gunman", r"gunmen", r"firearms?", r"shotgun", r"pistol",
        r"crossbow", r"baseball bat", r"armed", r"shots? fired", r"shot at", r"been shot",
        r"acid attack",
        r"(?:c|g|ngh|ch)yll(?:ell|yll)",  # Welsh: knife, knives
    )),
    Signal("fire", (
        r"fire", r"on fire", r"set alight", r"alight", r"flames", r"burning", r"arson attack",
        r"petrol bomb",
        r"(?:t|d|nh|th)ân",  # Welsh: fire ("tan", without the accent, means "until")
    )),
    Signal("someone hurt", (
        r"hurt", r"injured", r"injuries", r"bleeding", r"unconscious", r"not breathing",
        r"collapsed", r"ambulance", r"wounded",
        r"h?anaf(?:u|wyd|iadau|edig)", r"g?waedu", r"ambiwlans",
        # Welsh above: injure, was injured, injuries, injured; bleeding; ambulance
    )),
    Signal("in progress", (
        r"in progress", r"still (?:going on|happening)", r"still at it",
    )),
    Signal("suspect nearby", (
        r"still (?:here|there|outside|nearby|around|in the (?:area|street|road|garden|house))",
        r"hiding (?:in|behind|under)", r"lurking", r"hanging around outside",
        rf"{_SUBJECT}(?: is| are|'s|'re)? (?:outside|in (?:my|our|the) {_PLACE})",
        r"(?:just )?ran off", r"running off", r"made off", r"just ran",
    )),
    Signal("domestic abuse", (
        r"domestic (?:abuse|violence)", r"coercive", r"controlling behaviour",
        rf"my {_PARTNER} (?:hit|hits|is hitting|beat|beats|is beating|attacked|hurt|hurts|"
        r"threatened|threatens|strangled|won't let me)",
        rf"(?:scared|afraid|frightened) of my {_PARTNER}",
        r"(?:c|g|ngh|ch)am-drin domestig",  # Welsh: domestic abuse
    )),
    Signal("child at risk", (
        r"child abuse", r"groomed", r"grooming", r"abduct\w*", r"kidnap\w*",
        rf"{_CHILD}(?:ren|s)? (?:is |are |has |have )?(?:gone |been |went )?"
        r"(?:missing|in danger|at risk|alone|taken|hurt|abused)",
        rf"missing {_CHILD}",
        # Welsh: a child, children in danger or missing
        r"(?:p|b|mh|ph)l(?:entyn|ant) (?:mewn perygl|ar goll)",
    )),
    Signal("stolen right now", (
        r"stealing", r"being stolen", r"nicking", r"pinching",
        rf"(?:taking|driving off with|making off with) (?:my|our|the|a) {_VEHICLE}",
    )),
    Signal("theft", (
        r"(?:was|were|been|got|have been|has been) (?:\w+ )?stolen", r"stole (?:my|our|the)",
        r"robbed", r"nicked (?:my|our)", r"pickpocketed",
    )),
)
"""The signals, in the order `emergency_signals` reports them.

The list is deliberately generous. A false positive costs one extra how-to-report email and
a flag the team clears; a miss could cost a life, because a resident who reports a break-in
in progress by replying to a digest may wait for an answer instead of calling 999. So a
phrase is on the list if it sometimes means an emergency or a crime report, even though it
often does not ("fire", "hurt", "right now"), and "thanks for the 999 reminder" fires too:
from words alone it cannot be told apart from "I rang 999".

What it is not: a classifier of crimes, a measure of urgency, or a reason to treat a reply
as a report. It only chooses whether the how-to-report answer goes out at once. It also
only reads English and a few Welsh words (marked above, each with the forms Welsh mutation
gives it: "cyllell", "gyllell", "nghyllell"); other languages are not matched.
"""


def _compiled(signal: Signal) -> re.Pattern[str]:
    alternatives = "|".join(signal.patterns)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


_MATCHERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (signal.label, _compiled(signal)) for signal in SIGNALS
)

# Phones type curly apostrophes and some keyboards non-breaking hyphens and spaces.
_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2010": "-", "\u2011": "-",
                             "\u2013": "-"})
_WHITESPACE = re.compile(r"\s+")


def emergency_signals(text: str) -> tuple[str, ...]:
    """The labels of the signals in `text` (the resident's new words), in `SIGNALS` order."""
    text = _WHITESPACE.sub(" ", text.translate(_TYPOGRAPHY))
    return tuple(label for label, matcher in _MATCHERS if matcher.search(text))


def reads_like_a_report(text: str) -> bool:
    """Whether the resident's new words should get the how-to-report answer at once."""
    return bool(emergency_signals(text))

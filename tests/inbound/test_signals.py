"""The domain rule: a reply that reads like a crime report or an emergency is answered at once."""

from __future__ import annotations

import pytest

from alerts.inbound.signals import SIGNALS, emergency_signals, reads_like_a_report
from alerts.inbound.text import split_reply

# One or more sentences a resident might write for each signal, in our own words.
FIRES: dict[str, tuple[str, ...]] = {
    "999": ("I rang 999 but nobody has come yet.", "Should I call 999?",
            "I called 112 from my mobile.", "Do I dial nine nine nine for this?"),
    "emergency": ("This is an emergency, please read this now.", "Help! Please send help.",
                  "Mae hwn yn argyfwng."),
    "happening now": ("There is shouting in the street right now.",
                      "It's happening now, two of them.", "They are at the cars as we speak.",
                      "A group is outside my house now.", "Mae'n digwydd nawr."),
    "break-in": ("Someone broke in last night and took the laptop.",
                 "My car was broken into on the drive.", "I think they are breaking in next door.",
                 "We were burgled on Saturday.", "There's been a break-in at number 12.",
                 "Burglary in progress at the corner shop!", "Two lads trying car door handles.",
                 "Mae rhywun wedi torri i mewn i'r sied."),
    "assault": ("My brother was attacked walking home.", "He got beaten up by the chip shop.",
                "A man punched the driver.", "Someone was stabbed near the park.",
                "I was assaulted at the bus stop.", "Ymosododd dyn ar fy nghymydog."),
    "threat": ("The neighbour threatened me again.", "He keeps threatening my son.",
               "He said he'd kill me if I told anyone.", "Mae e wedi fy mygwth i.",
               "Mae e'n bygwth y teulu."),
    "weapon": ("He had a knife in his hand.", "I think one of them had a gun.",
               "They were carrying a machete.", "I heard shots fired.",
               "Roedd ganddo gyllell.", "Mae cyllell ganddo fe."),
    "fire": ("The garages behind us are on fire.", "Someone set fire to the bins.",
             "Mae'r car ar dân.", "Mae tân yn y sied."),
    "someone hurt": ("A cyclist is lying in the road, he's hurt.", "She is bleeding badly.",
                     "He's unconscious on the pavement.", "Please send an ambulance.",
                     "Mae dyn wedi'i anafu."),
    "in progress": ("The fight is still going on.", "Whatever it is, it's in progress."),
    "suspect nearby": ("He is still outside.", "Someone is in my garden.",
                       "There's somebody hiding in the bushes.",
                       "They're in the garden next door.", "They just ran off towards the canal."),
    "domestic abuse": ("My partner hit me last night.", "I'm scared of my husband.",
                       "It's domestic abuse, I think.", "Mae'n gam-drin domestig."),
    "child at risk": ("My daughter has gone missing from the park.",
                      "The children are alone in the flat.",
                      "A man has been grooming kids at the skate park.",
                      "Mae plentyn ar goll."),
    "stolen right now": ("They're stealing the catalytic converter off my car!",
                         "Someone is making off with my bike."),
    "theft": ("My bike was stolen from outside the station.", "Somebody stole my parcel.",
              "I was robbed on the high street."),
}


@pytest.mark.parametrize(("label", "sentence"),
                         [(label, s) for label, sentences in FIRES.items() for s in sentences])
def test_each_signal_fires_on_a_realistic_sentence(label: str, sentence: str) -> None:
    assert label in emergency_signals(sentence)
    assert reads_like_a_report(sentence)


def test_every_signal_in_the_table_has_sentences_above() -> None:
    assert list(FIRES) == [signal.label for signal in SIGNALS]


def test_signals_come_in_table_order_without_duplicates() -> None:
    found = emergency_signals(
        "Help! He has a knife and they broke in, someone is hurt. Call 999 right now! "
        "The burglars broke in through the back, they broke in twice.")
    order = [signal.label for signal in SIGNALS]
    assert found == ("999", "emergency", "happening now", "break-in", "weapon", "someone hurt")
    assert list(found) == sorted(found, key=order.index)
    assert len(set(found)) == len(found)


@pytest.mark.parametrize("sentence", [
    "Thanks for the update, see you at the meeting.",
    "Please can you add my neighbour to the Hillcrest list?",
    # Bare "burglary" is the digest's own word: asking about a reported one is not a report.
    "The burglary in your digest last week - is there an update?",
    "How many burglaries were there in Riverside this year?",
    "Any news on the possession of weapons arrest on Mill Lane?",
    # Numbers that contain 999 or 112 are not a call to 999.
    "My number is 01234 999888 if you need it.",
    "Call me on 0800 999 123.",
    "The bike cost £999 new.",
    "It came to 999.00 in the end.",
    "We live at 112 Mill Lane.",
    "There were 1999 entries.",
    # "tan" without the accent is Welsh for "until", not fire.
    "Diolch, wela i chi tan yfory.",
    "Fireworks on Bonfire Night were lovely.",
])
def test_ordinary_replies_do_not_fire(sentence: str) -> None:
    assert emergency_signals(sentence) == ()
    assert not reads_like_a_report(sentence)


def test_a_999_reminder_fires_because_words_alone_cannot_tell_it_from_a_call() -> None:
    # Decided: generous. "Thanks for the 999 reminder" costs one how-to-report email.
    assert emergency_signals("Thanks for the 999 reminder.") == ("999",)


def test_a_past_break_in_is_flagged_as_a_crime_report() -> None:
    assert emergency_signals("Someone broke in last night while we were asleep.") == (
        "break-in",)


def test_phrases_split_by_a_line_break_or_typed_on_a_phone_still_match() -> None:
    assert "break-in" in emergency_signals("they broke\nin through the window")
    assert "suspect nearby" in emergency_signals("They\u2019re still outside")
    assert "break-in" in emergency_signals("There was a break\u2011in on our road")


def test_matching_ignores_case_but_respects_word_boundaries() -> None:
    assert emergency_signals("THERE IS A MAN WITH A KNIFE") == ("weapon",)
    assert emergency_signals("Our gunnera plant was stolen") == ("theft",)
    assert emergency_signals("A new firewall for the library") == ()


def test_the_quoted_digest_gives_no_signals_once_split_off() -> None:
    body = (
        "Thanks, see you at the meeting on Thursday.\n\n"
        "On Tue, 24 Nov 2026 at 10:02, Riverside Alerts <alerts@example.org> wrote:\n\n"
        "> Riverside weekly round-up\n"
        "> Burglary: someone broke in to a house on Mill Lane; a break-in at the garages.\n"
        "> A man was assaulted on the high street and a car was set on fire.\n"
        "> If a crime is happening now, call 999.\n"
    )
    reply = split_reply(body)
    assert emergency_signals(reply.quoted)  # the digest itself reads like a report
    assert emergency_signals(reply.new) == ()


def test_a_report_above_the_quote_is_found_and_the_quote_adds_nothing() -> None:
    body = (
        "There's someone trying the back doors on our road right now.\n\n"
        "On Tue, 24 Nov 2026 at 10:02, Riverside Alerts <alerts@example.org> wrote:\n"
        "> A man was assaulted on the high street.\n"
    )
    assert emergency_signals(split_reply(body).new) == ("happening now", "break-in")


def test_empty_text_has_no_signals() -> None:
    assert emergency_signals("") == ()
    assert not reads_like_a_report("   \n")

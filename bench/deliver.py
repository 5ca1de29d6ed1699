"""Digest delivery at county scale: from `digest send --all` to the last message accepted by
an SMTP sink on loopback (Postfix's `smtp-sink`, in its own process).

    python bench/deliver.py [--subscribers 50000] [--wards 100] [--sample 1000]
                            [--ceiling-messages 5000] [--skip-postgres]
                            [--dkim rsa|ed25519|off]
    python bench/deliver.py --subscribers 100000     # the issue's county: about 8 minutes
    python bench/deliver.py --stages --subscribers 2000 --wards 20   # where A's time goes

The default of 50,000 subscribers keeps a run near four minutes on a 2-core machine; the
run grows linearly with the list, so 100,000 takes about eight. smtp-sink must be installed (Debian:
`DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`, then `service postfix stop`);
without it the script says so and exits non-zero. PostgreSQL's server binaries are needed
unless --skip-postgres.

Setup (not timed): a fresh database per measurement (`alerts init`'s migrations) with
`--wards` wards and `--subscribers` confirmed weekly subscribers spread evenly over them
(bulk inserts through SQLAlchemy core, consent fields filled); then, as an officer would
post them, each ward gets 19 posts and pieces of advice and two contact sessions, so that
its digest is about 27 KB of HTML (the run prints the rendered size).

Measured:
  A  SQLite, one process: `queue_digests` for every ward (what `alerts digest send --all`
     does), then `deliver_due` with mail.transport = "smtp" and concurrency 20, in a child
     process of its own; peak memory is that child's VmHWM. Run at two list sizes
     (`--subscribers` / 10 and `--subscribers`) to show that memory stays flat.
  B  PostgreSQL (a throw-away cluster from tests/postgres.py), two `alerts worker`
     processes already running (outbox_poll_seconds = 0.05); the digests are queued by
     `queue_digests` in this process and the workers send them; peak memory of each worker
     is its VmHWM, read before it is stopped with SIGTERM.
  Baseline 1, the sink's ceiling: a bare aiosmtplib sender, 20 reused connections, sending
     a real personalised digest (bytes made before the clock starts) in three rounds of
     `--ceiling-messages`; the fastest round counts.
  Baseline 2, a naive pipeline, on a sample of `--sample` recipients: per recipient, render
     the digest with Jinja, one ORM insert + commit for its delivery row, build the email
     with the email package, and send it with smtplib over one reused connection.
  DKIM, same run (`--dkim`, default rsa; keys made fresh in the run's temporary folder by
     the functions `alerts dkim keygen` uses): A again (`--subscribers`, a fresh database)
     with `[dkim]` set, every message signed with an RSA-2048 key (`--dkim ed25519`: and a
     second Ed25519 signature), beside A unsigned; B runs signed the same way (`--dkim
     off`: unsigned, and no second A); a sender builds its copies, and signs them, in a
     process of its own (alerts.mail.copy_process), started with its first batch, inside
     the timed part;
     and the signing cost per message on one real personalised digest (best of 3 rounds
     of `--sign-messages`): RSA-2048, Ed25519, both, and dkimpy's own `dkim.sign` for
     reference, beside the copy's own build (`personalise_email`).

"Last message accepted": the sender has recorded the sink's 250 reply to the message's
final "." as `sent` in the outbox and committed it. A ends when `deliver_due` returns (its
last batch committed); B ends at the first poll (every 50 ms, from another connection)
that finds no row of the run queued or in flight. smtp-sink's own counter (-c, "mesg=N")
must agree with the outbox; the run stops with an error if it does not.

--stages (nothing else is measured): A at --subscribers, unsigned and signed, with every step
of every message timed by wrappers put around the sender's functions (claim, read the batch,
build on the loop or in the copy process, each SMTP command, the wait until the success is
recorded, the record's UPDATE and commit), the event loop's lag sampled every millisecond,
garbage collections, the share of the time the connections spend sending, and the sender's
CPU time a message beside the ceiling's sender on the same messages in the same process.
Steps a tree does not have are left out, so a copy of this script in an older checkout
measures that checkout.

No timed unit tests: this script prints its figures and ratios; nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMTP_SINK = "/usr/sbin/smtp-sink"
INSTALL_SMTP_SINK = (
    "this benchmark sends to Postfix's smtp-sink ({path}), which is missing. Install it "
    "and make sure no Postfix daemon stays running:\n"
    "    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix\n"
    "    service postfix stop"
)
CONCURRENCY = 20
DKIM_DOMAIN = "alerts.example.org"
SIGN_ROUNDS = 3
CEILING_ROUNDS = 3
POLL_SECONDS = 0.05
SECRET = "bench-secret-key-not-for-production"

# What an officer might write: each ward gets these, so a digest is about 27 KB of HTML.
POSTS: list[tuple[str, str]] = [
    (
        "Thefts from vans on the industrial estate",
        "Over the last three weeks we have had eleven reports of tools taken from vans "
        "parked overnight on the roads around the industrial estate. In most cases the "
        "side door was forced near the lock, and the thieves were in and out in under a "
        "minute.\n\n"
        "We have increased patrols between midnight and five in the morning and are "
        "working with the estate's security company to review their camera footage. Two "
        "people have been stopped and searched, and one has been charged with going "
        "equipped for theft.\n\n"
        "If you keep tools in a van, please take them indoors overnight where you can, or "
        "fit an extra lock and a tool vault bolted to the floor. Parking with the side "
        "door against a wall or another vehicle makes it much harder to open quietly. "
        "Marking your tools with a postcode and a business name helps us return them "
        "when we recover them.\n\n"
        "If you run a business on the estate and would like a free security survey, reply "
        "to this email and PCSO Adebayo will arrange a visit at a time that suits you.",
    ),
    (
        "Parking outside the primary school at pick-up time",
        "Thank you to everyone who came to the meeting at the community centre about "
        "parking on the zig-zag lines outside the primary school. Parents, staff and "
        "people living on the surrounding roads all told us the same thing: the ten "
        "minutes before the bell are the most dangerous part of the day.\n\n"
        "For the next month officers and the council's enforcement team will be outside "
        "the school at random afternoons. We would much rather talk to drivers than "
        "ticket them, but vehicles left on the markings or across dropped kerbs will be "
        "dealt with.\n\n"
        "The school is starting a walking bus from the library car park, which has plenty "
        "of spaces and is a five-minute walk away. Volunteers are needed to walk with the "
        "children on two mornings a week; the school office has the details.\n\n"
        "If a vehicle is blocking your driveway, please ask the driver to move first. If "
        "that does not work, the council's parking line takes reports during school hours; "
        "an obstruction that stops an emergency vehicle getting through can be reported "
        "to us on 101.",
    ),
    (
        "Meet PCSO Hannah Okafor",
        "We are pleased to welcome Hannah to the team. She joins us from the town centre "
        "team, where she spent two years working with shops and licensed premises, and "
        "before that she was a youth worker in the same borough.\n\n"
        "Hannah will be looking after the estates north of the railway line, and you will "
        "see her on foot most weekdays. She is keen to meet the tenants' and residents' "
        "associations and the leaders of the youth clubs, so if you run a group and would "
        "like her to drop in, just reply to this email.\n\n"
        "Her first priority is the damage to the play area on the green, which several "
        "of you have raised. She is already talking to the housing association about "
        "better lighting along the path and about getting the broken gate repaired.\n\n"
        "Hannah says: I grew up a mile from here, and I know how much a safe park and a "
        "friendly face on the street matter. Please stop me for a chat whenever you see me.",
    ),
    (
        "Speed watch results for the high street",
        "Our volunteer speed watch group spent six sessions on the high street and on "
        "the hill down to the river last month. They checked just over two thousand "
        "vehicles, and one in nine was going faster than the limit. The fastest was "
        "recorded at forty-four miles an hour in the thirty zone, at half past eight on a "
        "Tuesday morning.\n\n"
        "Every driver caught speeding gets a letter, and a driver who gets a second letter "
        "receives a visit from an officer. Registrations seen three times are passed to "
        "the roads policing unit, who have the power to issue fines and points.\n\n"
        "The council has agreed to look at a raised crossing near the bus stop by the "
        "chemist, which came up again and again in your replies to our last survey. We "
        "will let you know what they decide.\n\n"
        "The group would like more volunteers, especially people who can spare an hour "
        "early in the morning. Training takes one evening and all the equipment is "
        "provided. Reply to this email if you would like to take part.",
    ),
    (
        "Anti-social behaviour by the canal path",
        "Residents near the canal have told us about groups gathering under the bridge in "
        "the evenings, with loud music, broken glass and small fires. We have visited the "
        "area every evening this week and spoken to the young people there, most of whom "
        "live locally and were happy to talk.\n\n"
        "A dispersal order was in place on Friday and Saturday night, and we seized "
        "alcohol from people under eighteen. Their parents have been contacted. The canal "
        "trust is cutting back the bushes along the path so that it is easier to see "
        "along it from the bridge.\n\n"
        "The youth service is running extra sessions at the sports hall on Friday evenings "
        "through the summer, with football, music and free food. We will be there too.\n\n"
        "Please keep telling us what you see, and when. Reports build a picture that lets "
        "us ask for more patrols and more help from partners. If people are in danger or "
        "a crime is happening now, always call 999.",
    ),
    (
        "Callers pretending to be from your bank",
        "Several older residents on the east side of the ward have had telephone calls "
        "from someone claiming to work for their bank's fraud team. The caller knows the "
        "person's name and address, sounds professional, and says that money must be moved "
        "to a safe account straight away because the current one has been compromised.\n\n"
        "One resident lost her savings this way before her daughter realised what was "
        "happening. Another was asked to hand his card to a courier who would call at the "
        "door; he sensibly rang his son instead, and the courier never arrived.\n\n"
        "Your bank will never ask you to move money to keep it safe, will never send "
        "someone to collect your card, and will never ask for your PIN. If you get a call "
        "like this, hang up, wait five minutes or use a different phone, and call the "
        "number on the back of your card.\n\n"
        "Please talk to older relatives and neighbours about this. We are happy to come "
        "and give a short talk to any club, lunch group or sheltered housing scheme in the "
        "ward; reply to this email to arrange it.",
    ),
    (
        "Bicycle thefts at the station",
        "Cycle thefts from the racks at the railway station have risen again, with "
        "fourteen bikes taken since the start of the month. Most were secured with a thin "
        "cable lock, which can be cut in seconds with a small pair of cutters that fit in "
        "a coat pocket.\n\n"
        "A good D-lock through the frame and the back wheel, and a second lock for the "
        "front wheel, will put most thieves off. Lock your bike to the rack, not just to "
        "itself, and avoid leaving it in the same place at the same time every day if "
        "you can.\n\n"
        "Register your bike on the national database, with its frame number and a photo. "
        "Bikes we recover are checked against it, and last year we returned more than "
        "forty to their owners in the borough because of it.\n\n"
        "We will be marking bikes for free at the station entrance on the first Monday of "
        "next month, from seven until ten in the morning. It takes about five minutes and "
        "you do not need to book.",
    ),
    (
        "Catalytic converters taken from parked cars",
        "Four catalytic converters were cut from cars parked on driveways and side roads "
        "in the south of the ward over two nights last week. Hybrid cars and vehicles that "
        "sit high off the ground are the most common targets, because the part is easy to "
        "reach and worth more.\n\n"
        "Residents reported hearing a loud grinding noise for a minute or two in the early "
        "hours. If you hear this, please call 999 straight away: the thieves are usually "
        "gone within five minutes, and a quick call gives us the best chance of catching "
        "them.\n\n"
        "A converter guard or a marking kit makes your car a less attractive target. Park "
        "in a garage if you have one, or close to a wall or fence so that it is harder to "
        "get underneath, and under a street light where possible.\n\n"
        "We are working with scrap metal dealers across the county and have carried out "
        "checks at three yards this month to make sure stolen parts are not being bought.",
    ),
    (
        "What you told us at the ward panel",
        "The ward panel met last Thursday at the library. Thank you to the thirty or so "
        "people who came along, and to the many more who sent their views by email "
        "beforehand. The panel is where residents set the team's priorities for the next "
        "three months, and we take what it decides seriously.\n\n"
        "The panel chose three priorities. The first is speeding on the high street and "
        "the hill down to the river. The second is anti-social behaviour around the "
        "canal path and the parade of shops on Station Road. The third is burglary and "
        "thefts from sheds and garages, which have risen in the past two months.\n\n"
        "We will report back on each of these in the digest every week, and in more detail "
        "at the next panel meeting. If you would like to join the panel, or just come "
        "along and listen, everyone who lives or works in the ward is welcome.\n\n"
        "Minutes of the meeting are available from the library and from the council's "
        "website, and we can email a copy to anyone who replies to this message.",
    ),
    (
        "Warrant at a flat on Elm Road",
        "On Wednesday morning officers executed a warrant at a flat on Elm Road following "
        "information from residents about people coming and going at all hours. A quantity "
        "of what we believe to be class A drugs, cash and two mobile phones were seized, "
        "and two men were arrested.\n\n"
        "Both have since been released on bail while enquiries continue. We have also "
        "spoken to the housing association, who are taking action over the tenancy.\n\n"
        "This warrant happened because people living nearby took the time to tell us what "
        "they were seeing. Small details such as car registrations, descriptions and the "
        "times of visits really do add up, even when it seems as if nothing is "
        "happening.\n\n"
        "You can pass on information anonymously to Crimestoppers, who will never ask "
        "your name and cannot trace your call. We will keep an eye on the area over the "
        "coming weeks.",
    ),
    (
        "Missing person found safe thanks to residents",
        "On Sunday afternoon we asked for help finding an eighty-one-year-old man who had "
        "left his home near the park and not returned. He lives with dementia and had gone "
        "out without his coat or his phone, on one of the coldest days of the year.\n\n"
        "Within an hour of our appeal going out, dozens of you were checking gardens, "
        "sheds and garages, and the local shops were sharing his photograph. He was found "
        "by a dog walker on the path behind the allotments, cold and tired but otherwise "
        "well, and is now back with his family.\n\n"
        "His family have asked us to pass on their heartfelt thanks to everyone who "
        "helped. They have also signed up to the Herbert Protocol, a simple form that "
        "carers fill in ahead of time with a photograph, medical needs and places the "
        "person might go. It saves precious time if someone goes missing.\n\n"
        "If you care for someone living with dementia, the form is available from the "
        "team, from the GP surgery on the high street and from the library. We can help "
        "you fill it in at any of our contact sessions.\n\n"
        "If someone you know goes missing and you are worried for their safety, do not "
        "wait twenty-four hours: call us on 101, or 999 if they are at immediate risk.",
    ),
    (
        "Fly-tipping and the new cameras",
        "Fly-tipping in the alleys behind the parade of shops and along the lane by the "
        "recycling centre has been one of the most common complaints to the team this "
        "year. Mattresses, building rubble and garden waste have all been dumped, "
        "sometimes blocking the alleys completely.\n\n"
        "The council has now installed three cameras that can be moved between hot "
        "spots, and its enforcement officers have issued eight fixed penalty notices in "
        "the first fortnight. Two vans seen on camera have been traced, and their owners "
        "are being prosecuted.\n\n"
        "Anyone who pays someone to take their rubbish away is responsible for making sure "
        "it is disposed of properly. Ask to see a waste carrier's licence, ask where the "
        "waste is going, and be suspicious of a very cheap price offered on social "
        "media.\n\n"
        "Fly-tipping can be reported to the council online, with a photograph and the "
        "location if you can do so safely. Please do not go through the waste yourself: "
        "it can contain sharp or dangerous items, and it may be evidence.",
    ),
    (
        "Results of our week of action",
        "Last week officers from the team, supported by colleagues from across the "
        "borough, carried out a week of action focused on the priorities you set at the "
        "ward panel. Here is a short summary of what happened.\n\n"
        "Speed checks on the high street and the hill stopped forty-two drivers, six of "
        "whom were reported for driving without insurance; their vehicles were seized. "
        "Patrols along the canal path and around the shops on Station Road led to three "
        "arrests for possession of drugs and one for carrying a knife.\n\n"
        "We visited more than two hundred homes in the streets most affected by burglary "
        "to give crime-prevention advice, and handed out timer switches, door chains and "
        "shed alarms paid for by the community safety partnership.\n\n"
        "We also held a drop-in session at the secondary school, where pupils asked "
        "excellent questions about staying safe online and what to do if they are "
        "worried about a friend. Thank you to the staff for inviting us.\n\n"
        "A week of action is only the start. The extra patrols will continue for the rest "
        "of the month, and we will tell you the results in a future digest.",
    ),
    (
        "Shed and garage break-ins",
        "Sheds and garages in the streets between the park and the allotments have been "
        "broken into on at least nine occasions this month. Lawnmowers, power tools and "
        "bicycles have been taken, and in two cases tools from a shed were then used to "
        "try to force the back door of the house.\n\n"
        "A shed is often the least secure building on a property. Fit a strong hasp and "
        "staple with coach bolts, so that the screws cannot simply be undone, and use a "
        "closed-shackle padlock. A battery shed alarm costs very little and is loud enough "
        "to scare most thieves away.\n\n"
        "Keep ladders locked up or chained to a wall, and cover shed windows so that "
        "nobody can see what is inside. Mark tools and bikes with your postcode, and keep "
        "a list of serial numbers and photographs somewhere safe.\n\n"
        "If you have a doorbell camera or a camera covering the back of your house, please "
        "check your recordings for the nights of the eleventh and twelfth, when most of "
        "these break-ins happened, and reply to this email if you think you have seen "
        "something.",
    ),
    (
        "Thank you to our volunteers",
        "This week is volunteers' week, and the team wants to say thank you to the many "
        "people in the ward who give their time to keep it a safe and friendly place to "
        "live. Without them, much of what we do would not be possible.\n\n"
        "Our Neighbourhood Watch coordinators look after more than sixty schemes across "
        "the ward, passing on our messages and making sure that new neighbours are "
        "welcomed. The speed watch group has given over three hundred hours this year. The "
        "street pastors are out every Friday and Saturday night in the town centre, "
        "helping people get home safely.\n\n"
        "Our volunteer police cadets, aged thirteen to seventeen, have helped at community "
        "events, handed out crime-prevention leaflets and taken part in test purchase "
        "operations that stop shops selling knives and alcohol to young people.\n\n"
        "If you would like to volunteer, there are roles to suit every amount of spare "
        "time, from an hour a month to several evenings a week. Reply to this email and "
        "we will send you the details.",
    ),
    (
        "Keeping the night-time economy safe",
        "With the new bars on Station Road now open late on Fridays and Saturdays, more "
        "people are coming into the ward in the evenings. That is good news for local "
        "businesses, and we want to keep it that way.\n\n"
        "Officers will patrol the area until the bars close, working with door staff, "
        "the street pastors and the taxi marshals at the rank by the station. The bars "
        "have signed up to a scheme that trains staff to spot anyone who is vulnerable or "
        "being targeted, and to help them get home safely.\n\n"
        "Residents living above and behind the parade have told us about noise and litter "
        "late at night. We have passed this on to the council's licensing team, who can "
        "review a licence where there are repeated problems, and we will be at the next "
        "licensing meeting.\n\n"
        "If you are out for the evening, plan how you will get home, keep your drink with "
        "you, and look out for your friends. If you see someone who seems unwell, lost or "
        "in trouble, tell a member of the door staff, a street pastor or one of the "
        "officers on patrol.\n\n"
        "The bars, the council and the team will meet again in three months to look at "
        "how the late opening is going, and residents are welcome to come and have their "
        "say. We will put the date in a future digest.",
    ),
]
MORE_ADVICE: list[tuple[str, str]] = [
    (
        "Doorstep callers and rogue traders",
        "At this time of year we hear about people calling at the door offering to clear "
        "gutters, fix roof tiles or tarmac a drive, often at a price that sounds good. "
        "Once the work starts, the price goes up, the work is poor, and some residents "
        "have been driven to the bank to withdraw cash.\n\n"
        "You do not have to open the door to anyone you are not expecting. Use the chain "
        "or look through a window, and ask genuine callers from the gas, water or "
        "electricity companies for identification, which you can check by calling the "
        "number on your bill, not one they give you.\n\n"
        "Never agree to work on the doorstep, and never pay in cash in advance. Get at "
        "least two quotes from traders you have found yourself, or through a trusted "
        "scheme run by the council. Anyone who will not take no for an answer is worth "
        "reporting to us.",
    ),
    (
        "Shopping safely online before the holidays",
        "Online shopping fraud goes up every year in the weeks before the holidays. The "
        "most common tricks are fake websites selling popular goods at low prices, and "
        "sellers on social media marketplaces who ask to be paid by bank transfer and "
        "then disappear.\n\n"
        "Pay by credit card or through the platform's own checkout where you can, because "
        "you have more protection if something goes wrong. Be wary of any seller who "
        "wants to move the conversation away from the site, and check reviews from more "
        "than one place before buying from a shop you do not know.\n\n"
        "Use a different strong password for your email account from every other site, and "
        "turn on two-step verification. If you think you have been caught out, call your "
        "bank straight away and report it to Action Fraud.",
    ),
]
ADVICE: tuple[str, str] = (
    "Keeping your home safe as the evenings draw in",
    "Most burglaries in the ward happen between four and eight in the evening in the "
    "autumn and winter, when houses are dark and it is obvious nobody is home. A few "
    "small habits make a real difference.\n\n"
    "Put a light on a timer in a front room, and close the curtains when it gets dark. "
    "Lock doors and windows even when you are in the garden or upstairs, and never leave "
    "keys in the lock or where they can be reached through the letterbox. Car keys are "
    "what many burglars are after.\n\n"
    "Check that the side gate is locked and that ladders and tools are not left out, "
    "because they are often used to get in. Photograph valuables and note serial numbers; "
    "property marking kits are free from the team at our contact sessions.\n\n"
    "If you are going away, ask a neighbour to collect post and move the bins, and do not "
    "share your travel plans on social media until you are home again.",
)
SESSION: tuple[str, str, str] = (
    "Coffee with your neighbourhood team",
    "The Corner Café, Market Street",
    "Drop in for a coffee and a chat with the team. Bring any questions about where you "
    "live: parking, speeding, noise, scams or anything else that is worrying you. We can "
    "mark bikes and tools while you wait, and we have free purse bells and shed alarms "
    "while stocks last.\n\n"
    "The café is step-free and has an accessible toilet. Children and dogs are welcome.",
)
PANEL: tuple[str, str, str] = (
    "Ward panel meeting",
    "Central Library, meeting room 2",
    "The ward panel is where residents choose what the team works on for the next three "
    "months. Come and hear what we have done about the last set of priorities, and tell "
    "us what should come next. Tea and biscuits from half past six.",
)


# --- small helpers ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _status_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM), in MB.

    Not getrusage's ru_maxrss: on Linux a child keeps the high-water mark of the image it
    was forked from, so every child of this (large) process would report its size.
    VmHWM belongs to the memory map that exec made.
    """
    return _status_mb("VmHWM", pid)


def rss_mb(pid: int | str = "self") -> float:
    return _status_mb("VmRSS", pid)


def require_smtp_sink() -> str:
    path = shutil.which("smtp-sink") or SMTP_SINK
    if not os.access(path, os.X_OK):
        raise SystemExit(INSTALL_SMTP_SINK.format(path=SMTP_SINK))
    return path


class SmtpSink:
    """Postfix's smtp-sink on a free loopback port, counting messages (-c) into a file."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.port = free_port()
        self.output = folder / "smtp-sink.out"
        command = [binary, "-c"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        command += [f"127.0.0.1:{self.port}", "1000"]
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"smtp-sink did not start:\n{self.output.read_text()}")
            time.sleep(0.05)

    def count(self) -> int:
        """Messages accepted so far: smtp-sink rewrites its counter line ("mesg=N") after
        each message's final "." and each session's end."""
        with self.output.open("rb") as out:
            out.seek(max(0, self.output.stat().st_size - 200))
            found = re.findall(rb"mesg=(\d+)", out.read())
        return int(found[-1]) if found else 0

    def wait_for(self, total: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while (seen := self.count()) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(path: Path, url: str, smtp_port: int, dkim: DkimKeys | None = None) -> Path:
    signing = "" if dkim is None else (
        f'[dkim]\ndomain = "{DKIM_DOMAIN}"\nselector = "bench"\n'
        f'private_key_file = "{dkim.rsa}"\n' + (
            "" if dkim.ed25519 is None else
            f'ed25519_selector = "bench-ed"\ned25519_private_key_file = "{dkim.ed25519}"\n'))
    path.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[mail]\ntransport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
        f"concurrency = {CONCURRENCY}\n"
        f'[web]\nsecret_key = "{SECRET}"\nbase_url = "https://alerts.example.org"\n'
        f"[scheduler]\noutbox_poll_seconds = {POLL_SECONDS}\n" + signing
    )
    return path


@dataclass(frozen=True)
class DkimKeys:
    """What `[dkim]` signs with in a run: always RSA; Ed25519 (RFC 8463) as a second one."""

    rsa: Path
    ed25519: Path | None = None

    def label(self) -> str:
        return "RSA-2048" if self.ed25519 is None else "RSA-2048 + Ed25519"


def write_dkim_keys(folder: Path) -> tuple[Path, Path]:
    """An RSA-2048 and an Ed25519 key, as `alerts dkim keygen` writes them (not timed)."""
    from alerts.mail.dkim import new_key, write_key

    rsa_key, ed_key = folder / "dkim-rsa.pem", folder / "dkim-ed25519.pem"
    write_key(new_key(), rsa_key)
    write_key(new_key(ed25519_key=True), ed_key)
    return rsa_key, ed_key


def child(kind: str, *args: str) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter, so its peak memory is its own."""
    result = subprocess.run([sys.executable, __file__, "--child", kind, *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {kind} measurement failed:\n{result.stderr[-4000:]}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# --- setup (not timed) --------------------------------------------------------------------

def add_residents(engine: Any, ward_ids: list[int], subscribers: int, *, joined: datetime,
                  source: str, homes: list[int] | None = None,
                  language: Callable[[int], str | None] = lambda n: None,
                  topics: Callable[[int], str | None] = lambda n: None) -> None:
    """`subscribers` confirmed weekly residents (resident0@home.example, …) inserted in bulk,
    spread evenly over the wards unless `homes` gives each one's ward id; `language` and
    `topics` give resident n's choices (bench/web.py and bench/digest_audiences.py build
    their residents with this too)."""
    from sqlalchemy import insert

    from subscriptions.consent import CURRENT_WORDING, ConsentMethod
    from subscriptions.subscribers import Frequency, Status, Subscriber, Subscription

    if homes is None:
        per_ward, extra = divmod(subscribers, len(ward_ids))
        homes = [ward_id for index, ward_id in enumerate(ward_ids)
                 for _ in range(per_ward + (index < extra))]
    chunk = 10_000
    with engine.begin() as connection:
        for first in range(0, subscribers, chunk):
            numbers = range(first, min(first + chunk, subscribers))
            connection.execute(insert(Subscriber), [
                {"id": n + 1, "email": f"resident{n}@home.example", "name": f"Resident {n}",
                 "created_at": joined, "language": language(n)} for n in numbers])
            connection.execute(insert(Subscription), [
                {"subscriber_id": n + 1, "ward_id": homes[n], "topics": topics(n),
                 "frequency": Frequency.WEEKLY.value, "status": Status.CONFIRMED.value,
                 "consent_at": joined, "consent_method": ConsentMethod.CSV_IMPORT.value,
                 "consent_source": source, "consent_wording": CURRENT_WORDING,
                 "consent_prior_declared": True, "confirmed_at": joined, "created_at": joined}
                for n in numbers])


def session_items(start: datetime, *, now: datetime) -> list[Any]:
    """A ward's two coming contact sessions (SESSION, PANEL), the first at `start`
    (bench/web.py builds its archive with these too)."""
    from alerts.sources.items import ItemKind
    from alerts.sources.officer import officer_item

    sessions = []
    for offset, (title, place, body) in enumerate((SESSION, PANEL)):
        begins = start + timedelta(days=offset, hours=8 * offset)
        sessions.append(officer_item(title=title, body=body, kind=ItemKind.SESSION,
                                     starts=begins, ends=begins + timedelta(hours=2),
                                     location=place, now=now))
    return sessions


def populate(url: str, wards: int, subscribers: int) -> dict[str, int]:
    """A fresh schema (`alerts init`), wards, confirmed subscribers and each ward's items."""

    from alerts.core.db import make_engine, migrate, session_factory
    from alerts.sources.items import ItemKind, store_items
    from alerts.sources.officer import officer_item
    from alerts.sources.registry import officer_source
    from subscriptions.wards import Ward, add_ward

    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    joined = datetime.now(UTC) - timedelta(days=2)
    with factory() as session, session.begin():
        ward_ids = [add_ward(session, f"W{n:03d}", f"Ward {n:03d}",
                             f"team-w{n:03d}@police.example").id for n in range(wards)]
    add_residents(engine, ward_ids, subscribers, joined=joined, source="bench/deliver.py")
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            # The ids above were given explicitly; let later inserts carry on after them.
            connection.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), "
                "(SELECT max(id) FROM subscribers))")
            connection.commit()
    # Items come after the residents confirmed, so every one of them is due all of them.
    now = datetime.now(UTC)
    start = (now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    with factory() as session, session.begin():
        for ward_id in ward_ids:
            ward = session.get(Ward, ward_id)
            assert ward is not None
            items = [officer_item(title=title, body=body, kind=ItemKind.POST, starts=None,
                                  ends=None, location=None, now=now) for title, body in POSTS]
            items += [officer_item(title=title, body=body, kind=ItemKind.ADVICE, starts=None,
                                   ends=None, location=None, now=now)
                      for title, body in (ADVICE, *MORE_ADVICE)]
            items += session_items(start, now=now)
            store_items(session, officer_source(session, ward), items)
    engine.dispose()
    return {"wards": wards, "subscribers": subscribers}


# --- the measurements, each in a child process ---------------------------------------------

def measure_a(config: str) -> dict[str, Any]:
    """SQLite, one process: queue every ward's digest, then send everything due."""
    from sqlalchemy import func, select

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.delivery.outbox import Delivery, DeliveryStatus
    from alerts.delivery.sender import deliver_due
    from alerts.mail.messages import Message
    from alerts.usecases.digest_rounds import queue_digests

    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    factory = session_factory(engine)
    with factory() as session:  # open the file and load the mappers before the clock starts
        session.scalar(select(func.count()).select_from(Delivery))
    rss_before = rss_mb()
    started = time.perf_counter()
    outcomes = queue_digests(factory, settings)
    queued_at = time.perf_counter()
    report = deliver_due(factory, settings, batch_size=settings.mail.batch_size)
    finished = time.perf_counter()
    with factory() as session:
        sent = session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.status == DeliveryStatus.SENT)) or 0
        html = session.scalar(select(func.max(func.length(Message.html)))) or 0
    return {
        "queued": sum(o.deliveries for o in outcomes),
        "messages": sum(len(o.message_ids) for o in outcomes),
        "sent": sent,
        "report": report.__dict__,
        "queue_seconds": queued_at - started,
        "wall_seconds": finished - started,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "html_bytes": html,
    }


def digest_outgoing(config: str) -> Any:
    """One resident's copy of a digest (an Outgoing), from a database where A has run."""
    from sqlalchemy import select

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.mail.messages import Message, MessageKind
    from alerts.mail.mime import Outgoing
    from subscriptions.links import new_nonce
    from subscriptions.wards import Ward

    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    with session_factory(engine)() as session:
        message, ward = session.execute(
            select(Message, Ward).join(Ward, Ward.id == Message.ward_id)
            .where(Message.kind == MessageKind.DIGEST).order_by(Message.id).limit(1)
        ).one()
    engine.dispose()
    outgoing = Outgoing(delivery_id=1, message_id=message.id, kind=message.kind,
                        subject=message.subject, html=message.html, text=message.text,
                        calendar=message.calendar, ward_code=ward.code, ward_name=ward.name,
                        recipient_email="resident0@home.example", recipient_name="Resident 0",
                        subscription_id=1, created_at=message.created_at,
                        delivery_nonce=new_nonce(), subscription_nonce=new_nonce(),
                        message_nonce=message.nonce)
    return outgoing


def digest_sample(config: str) -> tuple[str, bytes]:
    """One personalised digest as delivery sends it, from a database where A has run."""
    from alerts.core.config import load_settings
    from alerts.mail.mime import build_email

    return build_email(digest_outgoing(config), load_settings(config), now=datetime.now(UTC))


def measure_ceiling(config: str, port: str, messages: str) -> dict[str, Any]:
    """Baseline 1: bare aiosmtplib, 20 reused connections, ready-made messages."""
    import aiosmtplib

    total = int(messages)
    envelope_from, data = digest_sample(config)
    # Distinct bytes per message, all made before the clock starts.
    payloads = [data.replace(b"resident0@home.example", f"resident{n}@home.example".encode())
                for n in range(min(total, 200))]

    async def run() -> list[float]:
        clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=int(port)) for _ in
                   range(CONCURRENCY)]
        await asyncio.gather(*(client.connect() for client in clients))

        async def worker(client: aiosmtplib.SMTP, counter: Iterator[int]) -> None:
            for n in counter:
                await client.sendmail(envelope_from, [f"resident{n}@home.example"],
                                      payloads[n % len(payloads)])

        rounds = []
        for _ in range(CEILING_ROUNDS):
            counter = iter(range(total))
            started = time.perf_counter()
            await asyncio.gather(*(worker(client, counter) for client in clients))
            rounds.append(time.perf_counter() - started)
        await asyncio.gather(*(client.quit() for client in clients))
        return rounds

    rounds = asyncio.run(run())
    # A ceiling is the best the sender and the sink can do: the fastest round, so that a
    # moment of load from elsewhere on the machine does not lower it.
    return {"messages": total, "wall_seconds": min(rounds), "rounds": rounds,
            "sent_in_all": total * len(rounds), "message_bytes": len(data),
            "peak_rss_mb": peak_rss_mb()}


def measure_stages(config: str, port: str) -> dict[str, Any]:
    """--stages: A (`queue_digests`, then `deliver_due`) with each stage of each message
    timed by wrappers put around the sender's steps, the event loop's lag sampled every
    millisecond, and the ceiling's sender on the same messages for CPU time a message.
    Steps a tree does not have are left out, so an older checkout can be measured too."""
    import gc
    from collections import defaultdict

    import aiosmtplib
    from sqlalchemy.orm import Session

    import alerts.delivery.sender as sender
    import alerts.delivery.smtp as smtp
    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.usecases.digest_rounds import queue_digests

    spent: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, work: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return work(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - started)
        return wrapper

    def awaited(name: str, work: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await work(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - started)
        return wrapper

    settings = load_settings(config)
    factory = session_factory(make_engine(settings.database.url))
    queue_digests(factory, settings)
    steps: list[tuple[Any, str, str, Callable[..., Any]]] = [
        (sender, "claim_due", "claim (loop)", timed),
        (sender, "_load", "read the batch (loop)", timed),
        (sender, "prepare_message", "prepare a message (loop)", timed),
        (sender, "personalise_email", "build a copy on the loop", timed),
        (sender, "mark_all_sent", "mark sent (UPDATE)", timed),
        (getattr(sender, "_Recorder", None), "sent", "slot held until recorded", awaited),
        (getattr(sender, "_Recorder", None), "_write", "record: UPDATE + commit (thread)",
         timed),
        (smtp.SmtpTransport, "send", "SMTP send, all of it", awaited),
        *((aiosmtplib.SMTP, phase, f"SMTP {phase.upper()}", awaited)
          for phase in ("mail", "rcpt", "data")),
        (Session, "commit", "commit (loop)", timed),
    ]
    with contextlib.suppress(ImportError):
        from alerts.mail.copy_process import CopyProcess
        steps += [(CopyProcess, "build", "build (+ sign) in the copy process", awaited),
                  (CopyProcess, "sign", "sign in the copy process", awaited)]
    with contextlib.suppress(ImportError):  # an older tree's
        from alerts.mail import dkim_process  # type: ignore[attr-defined]
        steps.append((dkim_process.SigningProcess, "sign", "sign in the signing process",
                      awaited))
    for owner, name, label, wrap in steps:
        if owner is not None and hasattr(owner, name):
            setattr(owner, name, wrap(label, getattr(owner, name)))
    collecting: dict[str, float] = {}

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting["at"] = time.perf_counter()
        else:
            spent[f"garbage collection, generation {info['generation']}"].append(
                time.perf_counter() - collecting["at"])

    gc.callbacks.append(collector)
    lags: list[float] = []

    async def run() -> tuple[Any, float, float]:
        stop = asyncio.Event()

        async def sample() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                asked = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - asked - 0.001)

        sampler = asyncio.create_task(sample())
        cpu, wall = time.process_time(), time.perf_counter()
        report = await sender.deliver_due_async(factory, settings,
                                                batch_size=settings.mail.batch_size)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stop.set()
        await sampler
        return report, wall, cpu

    report, wall, cpu = asyncio.run(run())
    gc.callbacks.remove(collector)
    sent = report.sent
    lags.sort()
    stages = {name: [len(times), sum(times)] for name, times in spent.items()}
    busy = sum(spent["SMTP send, all of it"]) / (settings.mail.concurrency * wall)
    ceiling = stages_ceiling(config, port, sent)  # after the stages are read: it sends too
    return {
        "sent": sent, "wall_seconds": wall, "cpu_ms": cpu / sent * 1000,
        "lag_ms": [lags[min(len(lags) - 1, int(len(lags) * q))] * 1000
                   for q in (0.5, 0.9, 0.99, 1.0)],
        "busy": busy, "stages": stages,
        "ceiling": ceiling, "load": os.getloadavg()[0],
    }


def stages_ceiling(config: str, port: str, total: int) -> dict[str, float]:
    """The ceiling's sender (20 connections, messages made beforehand) on `total` messages:
    its rate and CPU time a message, beside A's in the same process."""
    import aiosmtplib

    envelope_from, data = digest_sample(config)
    payloads = [data.replace(b"resident0@home.example", f"resident{n}@home.example".encode())
                for n in range(min(total, 200))]

    async def run() -> tuple[float, float]:
        clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=int(port))
                   for _ in range(CONCURRENCY)]
        await asyncio.gather(*(client.connect() for client in clients))
        counter = iter(range(total))

        async def worker(client: aiosmtplib.SMTP) -> None:
            for n in counter:
                await client.sendmail(envelope_from, [f"resident{n}@home.example"],
                                      payloads[n % len(payloads)])

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await asyncio.gather(*(client.quit() for client in clients))
        return wall, cpu

    wall, cpu = asyncio.run(run())
    return {"wall_seconds": wall, "cpu_ms": cpu / total * 1000, "sent": total}


def report_stages(label: str, result: dict[str, Any]) -> None:
    sent, ceiling = result["sent"], result["ceiling"]
    rate, ceiling_rate = sent / result["wall_seconds"], sent / ceiling["wall_seconds"]
    print(f"\n{label}: {sent:,} messages, {rate:.0f} msg/s against the ceiling's "
          f"{ceiling_rate:.0f} on the same messages ({rate / ceiling_rate:.2f} x); CPU of the "
          f"sender's process {result['cpu_ms']:.2f} ms a message against the ceiling's "
          f"{ceiling['cpu_ms']:.2f} ({ceiling['cpu_ms'] / result['cpu_ms']:.2f} x); load "
          f"average {result['load']:.2f}")
    print(f"  connections busy sending {result['busy']:.0%} of the time; the loop's lag "
          "(p50/p90/p99/max) " + " / ".join(f"{lag:.1f}" for lag in result["lag_ms"]) + " ms")
    print(f"  {'stage':44} {'times':>7} {'ms each':>9} {'ms a message':>13}")
    for name, (times, seconds) in result["stages"].items():
        print(f"  {name:44} {times:>7,} {seconds / times * 1000:>9.2f} "
              f"{seconds / sent * 1000:>13.2f}")


def measure_naive(config: str, port: str, sample: str) -> dict[str, Any]:
    """Baseline 2: render per recipient, build with the email package, one ORM insert and
    commit per row, sequential smtplib over one connection."""
    from sqlalchemy import select

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.delivery.outbox import Delivery, DeliveryStatus
    from alerts.digests.compose import DigestContent, compose_digest
    from alerts.mail.messages import Message, MessageKind
    from alerts.mail.mime import Outgoing, build_email_slowly
    from alerts.mail.render import render_digest
    from alerts.usecases.digest_rounds import items_between
    from subscriptions.subscribers import Status, Subscriber, Subscription
    from subscriptions.wards import Ward

    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    factory = session_factory(engine)
    count = int(sample)
    with factory() as session:
        recipients = session.execute(
            select(Subscription.id, Subscription.nonce, Subscriber.id, Subscriber.email,
                   Subscriber.name, Ward.id, Ward.code, Ward.name)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(Ward, Ward.id == Subscription.ward_id)
            .where(Subscription.status == Status.CONFIRMED)
            .order_by(Subscription.id).limit(count)
        ).all()
    client = smtplib.SMTP("127.0.0.1", int(port))
    client.ehlo()
    contents: dict[int, DigestContent] = {}
    messages: dict[int, tuple[int, str]] = {}
    started = time.perf_counter()
    now = datetime.now(UTC)
    with factory() as session:
        for (subscription_id, subscription_nonce, subscriber_id, email, name, ward_id, code,
             ward_name) in recipients:
            if ward_id not in contents:
                ward = session.get(Ward, ward_id)
                assert ward is not None
                content = compose_digest(
                    code, ward_name, items_between(session, ward, 0, 2**62), now=now,
                    max_age=timedelta(days=settings.sources.max_item_age_days))
                assert content is not None
                contents[ward_id] = content
                rendered = render_digest(content, settings, now=now)
                message = Message(ward_id=ward_id, kind=MessageKind.DIGEST,
                                  subject=rendered.subject, html=rendered.html,
                                  text=rendered.text, calendar=rendered.calendar,
                                  created_at=now)
                session.add(message)
                session.commit()
                messages[ward_id] = message.id, message.nonce
            message_id, message_nonce = messages[ward_id]
            rendered = render_digest(contents[ward_id], settings, now=now)
            delivery = Delivery(message_id=message_id, subscriber_id=subscriber_id,
                                status=DeliveryStatus.SENT, attempts=1, sent_at=now)
            session.add(delivery)
            session.commit()
            outgoing = Outgoing(
                delivery_id=delivery.id, message_id=message_id, kind=MessageKind.DIGEST,
                subject=rendered.subject, html=rendered.html, text=rendered.text,
                calendar=rendered.calendar, ward_code=code, ward_name=ward_name,
                recipient_email=email, recipient_name=name, subscription_id=subscription_id,
                created_at=now, delivery_nonce=delivery.nonce,
                subscription_nonce=subscription_nonce, message_nonce=message_nonce)
            envelope_from, data = build_email_slowly(outgoing, settings, now=datetime.now(UTC))
            client.sendmail(envelope_from, [email], data)
    elapsed = time.perf_counter() - started
    client.quit()
    engine.dispose()
    return {"messages": len(recipients), "wall_seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def measure_signing(config: str, rsa_key: str, ed_key: str, messages: str) -> dict[str, Any]:
    """Signing cost per message on a real personalised digest: RSA-2048, Ed25519, both, and
    dkimpy's own `dkim.sign` (RSA, pure Python) for reference; beside it the copy's own
    build (`personalise_email`), the work every message does with signing off. Each figure
    is the best of SIGN_ROUNDS rounds of `messages` messages; keys are loaded before."""
    import dkim

    from alerts.core.config import DkimSettings, load_settings
    from alerts.mail.dkim import SIGNED_HEADERS, load_signer
    from alerts.mail.mime import personalise_email, prepare_message

    settings = load_settings(config)
    outgoing = digest_outgoing(config)
    prepared = prepare_message(outgoing, settings)
    _, data = personalise_email(prepared, outgoing, settings, now=datetime.now(UTC))
    signers = {
        name: load_signer(DkimSettings(domain=DKIM_DOMAIN, **keys)) for name, keys in (
            ("rsa", {"selector": "r", "private_key_file": rsa_key}),
            ("ed25519", {"selector": "e", "private_key_file": rsa_key,
                         "ed25519_selector": "e", "ed25519_private_key_file": ed_key}),
        )}
    rsa_signer, both = signers["rsa"], signers["ed25519"]
    assert rsa_signer is not None and both is not None
    ed_only = dataclasses.replace(both, keys=both.keys[1:])
    pem = Path(rsa_key).read_bytes()
    include = [*SIGNED_HEADERS, b"from"]
    count = int(messages)

    def best(work: Callable[[], object]) -> float:
        # CPU time of this thread, not wall time: less at the mercy of other work on the
        # machine (the key operation runs on this thread, as the signing thread does).
        rounds = []
        for _ in range(SIGN_ROUNDS):
            started = time.thread_time()
            for _ in range(count):
                work()
            rounds.append((time.thread_time() - started) / count * 1e6)
        return min(rounds)

    return {
        "message_bytes": len(data), "messages": count,
        "build_us": best(lambda: personalise_email(prepared, outgoing, settings,
                                                   now=datetime.now(UTC))),
        "rsa_us": best(lambda: rsa_signer.sign(data)),
        "ed25519_us": best(lambda: ed_only.sign(data)),
        "both_us": best(lambda: both.sign(data)),
        "dkimpy_rsa_us": best(lambda: dkim.sign(
            data, b"r", DKIM_DOMAIN.encode(), pem, canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include)),
    }


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "a": measure_a, "ceiling": measure_ceiling, "naive": measure_naive,
    "signing": measure_signing, "stages": measure_stages,
}


# --- PostgreSQL with two workers ------------------------------------------------------------

@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path


def start_workers(config: Path, folder: Path, count: int) -> list[Worker]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    workers = []
    for n in range(count):
        log = folder / f"worker-{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "alerts.cli", "--config", str(config), "worker"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=folder)
        workers.append(Worker(process, log))
    deadline = time.monotonic() + 60
    for worker in workers:
        while "alerts worker: pid" not in worker.log.read_text(errors="replace"):
            if worker.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"alerts worker did not start:\n{worker.log.read_text()}")
            time.sleep(0.05)
    return workers


def stop_workers(workers: list[Worker]) -> list[int]:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    codes: list[int] = []
    for worker in workers:
        try:
            codes.append(worker.process.wait(30))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            codes.append(worker.process.wait())
    return codes


def measure_b(folder: Path, sink: SmtpSink, wards: int, subscribers: int,
              dkim: DkimKeys | None = None) -> dict[str, Any]:
    from sqlalchemy import func, select

    from alerts.core.config import load_settings
    from alerts.core.db import make_engine, session_factory
    from alerts.delivery.outbox import Delivery, DeliveryStatus
    from alerts.usecases.digest_rounds import queue_digests
    from tests.postgres import postgres_cluster

    with postgres_cluster() as cluster:
        database = cluster.create_database()
        url = cluster.url(database)
        populate(url, wards, subscribers)
        config = write_config(folder / "postgres.toml", url, sink.port, dkim)
        settings = load_settings(str(config))
        engine = make_engine(url)
        factory = session_factory(engine)
        workers = start_workers(config, folder, 2)
        try:
            idle = [rss_mb(w.process.pid) for w in workers]
            before = sink.count()
            started = time.perf_counter()
            outcomes = queue_digests(factory, settings)
            queued_at = time.perf_counter()
            queued = sum(o.deliveries for o in outcomes)
            deadline = time.monotonic() + 1800
            # A cheap question (an index lookup), so that polling takes little from the
            # workers: is any row of the run still waiting or in flight?
            pending = select(Delivery.id).where(
                Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING])).limit(1)
            with factory() as session:
                while session.scalar(pending) is not None:
                    session.rollback()  # a fresh snapshot on the next poll
                    if time.monotonic() > deadline:
                        raise SystemExit("PostgreSQL run: not all sent after 30 minutes")
                    if any(w.process.poll() is not None for w in workers):
                        raise SystemExit("an alerts worker died:\n"
                                         + "\n".join(w.log.read_text()[-2000:]
                                                     for w in workers))
                    time.sleep(POLL_SECONDS)
            finished = time.perf_counter()
            accepted = sink.wait_for(before + queued) - before
            peaks = [peak_rss_mb(w.process.pid) for w in workers]
        finally:
            codes = stop_workers(workers)
            engine.dispose()
        with factory() as session:
            by_status = {str(status): count for status, count in session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)).all()}
        engine.dispose()
        cluster.drop_database(database)
    return {"queued": queued, "sent": by_status.get(DeliveryStatus.SENT, 0),
            "accepted": accepted, "by_status": by_status,
            "queue_seconds": queued_at - started, "wall_seconds": finished - started,
            "rss_before_mb": idle, "peak_rss_mb": peaks, "exit_codes": codes}


# --- the run --------------------------------------------------------------------------------

def sqlite_run(folder: Path, sink: SmtpSink, name: str, wards: int,
               subscribers: int, dkim: DkimKeys | None = None) -> tuple[Path, dict[str, Any]]:
    url = f"sqlite:///{folder / f'{name}.db'}"
    populate(url, wards, subscribers)
    config = write_config(folder / f"{name}.toml", url, sink.port, dkim)
    before = sink.count()
    result = child("a", str(config))
    result["accepted"] = sink.wait_for(before + result["sent"]) - before
    check(name, result)
    return config, result


def check(name: str, result: dict[str, Any]) -> None:
    if not result["queued"] == result["sent"] == result["accepted"]:
        raise SystemExit(f"{name}: queued {result['queued']}, sent {result['sent']}, "
                         f"smtp-sink counted {result['accepted']}: they should agree")


def rate(result: dict[str, Any], key: str = "sent") -> float:
    return float(result[key]) / float(result["wall_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50_000,
                        help="confirmed subscribers (default 50,000 keeps the run near four "
                             "minutes; the issue's figure is --subscribers 100000, ~8 min)")
    parser.add_argument("--wards", type=int, default=100)
    parser.add_argument("--sample", type=int, default=1000,
                        help="recipients for the naive pipeline (a sample)")
    parser.add_argument("--ceiling-messages", type=int, default=5_000,
                        help="messages in each of the sink's-ceiling rounds (best of "
                             f"{CEILING_ROUNDS} is reported)")
    parser.add_argument("--sign-messages", type=int, default=300,
                        help="messages in each round of the signing micro-figures (best of "
                             f"{SIGN_ROUNDS})")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--dkim", choices=("rsa", "ed25519", "off"), default="rsa",
                        help="sign A (a second run beside the unsigned one) and B with a fresh "
                             "RSA-2048 key, or RSA-2048 and a second Ed25519 signature, or "
                             "not at all (default rsa)")
    parser.add_argument("--stages", action="store_true",
                        help="only A (and A signed unless --dkim off) at --subscribers "
                             "(2,000 is low load enough), each message's stages timed; no "
                             "other measurement")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, *args = options.child
        print(json.dumps(CHILDREN[kind](*args)))
        return

    binary = require_smtp_sink()
    options.load_at_start = os.getloadavg()[0]
    # The config files this run writes decide everything: no ALERTS_* from the caller's
    # environment reaches this process, its children or the workers.
    for name in [name for name in os.environ if name.startswith("ALERTS_")]:
        del os.environ[name]
    if not options.skip_postgres:
        from tests.postgres import PostgresUnavailable, find_binaries
        try:
            find_binaries()
        except PostgresUnavailable as exc:
            raise SystemExit(f"{exc}\n(or run with --skip-postgres)") from None
    small = max(options.wards, options.subscribers // 10)

    def interrupted(signum: int, _frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # so that `finally` cleans up

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    folder = Path(tempfile.mkdtemp(prefix="alerts-bench-deliver-"))
    sink = SmtpSink(binary, folder)
    try:
        if options.stages:
            stages(options, folder, sink)
            return
        print(f"setting up: {options.wards} wards; SQLite databases of {small:,} and "
              f"{options.subscribers:,} confirmed subscribers; smtp-sink on 127.0.0.1:"
              f"{sink.port}", flush=True)
        _, a_small = sqlite_run(folder, sink, "sqlite-small", options.wards, small)
        config, a_full = sqlite_run(folder, sink, "sqlite-full", options.wards,
                                    options.subscribers)
        rsa_key, ed_key = write_dkim_keys(folder)
        dkim = None if options.dkim == "off" else DkimKeys(
            rsa_key, ed_key if options.dkim == "ed25519" else None)
        a_signed = None
        if dkim is not None:
            _, a_signed = sqlite_run(folder, sink, "sqlite-dkim", options.wards,
                                     options.subscribers, dkim=dkim)
        signing = child("signing", str(config), str(rsa_key), str(ed_key),
                        str(options.sign_messages))
        before = sink.count()
        ceiling = child("ceiling", str(config), str(sink.port), str(options.ceiling_messages))
        if sink.wait_for(before + ceiling["sent_in_all"]) - before != ceiling["sent_in_all"]:
            raise SystemExit("the ceiling run: smtp-sink did not count every message")
        ceiling["accepted"] = ceiling["messages"]
        before = sink.count()
        naive = child("naive", str(config), str(sink.port), str(options.sample))
        naive["accepted"] = sink.wait_for(before + naive["messages"]) - before
        b = None
        if not options.skip_postgres:
            b = measure_b(folder, sink, options.wards, options.subscribers, dkim)
            check("PostgreSQL", b)
        report(options, a_small, a_full, b, ceiling, naive, a_signed, dkim)
        if a_signed is not None and dkim is not None:
            report_signing(a_full, a_signed, signing, dkim)
    finally:
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)  # after timing, never before


def stages(options: argparse.Namespace, folder: Path, sink: SmtpSink) -> None:
    """--stages: A at --subscribers, unsigned and (unless --dkim off) signed, stage by stage."""
    runs: list[tuple[str, DkimKeys | None]] = [("A  SQLite, one process", None)]
    if options.dkim != "off":
        rsa_key, ed_key = write_dkim_keys(folder)
        keys = DkimKeys(rsa_key, ed_key if options.dkim == "ed25519" else None)
        runs.append((f"A  SQLite, one process, DKIM {keys.label()}", keys))
    for number, (label, signing) in enumerate(runs):
        url = f"sqlite:///{folder / f'stages-{number}.db'}"
        populate(url, options.wards, options.subscribers)
        config = write_config(folder / f"stages-{number}.toml", url, sink.port, signing)
        report_stages(label, child("stages", str(config), str(sink.port)))


def report(options: argparse.Namespace, a_small: dict[str, Any], a_full: dict[str, Any],
           b: dict[str, Any] | None, ceiling: dict[str, Any], naive: dict[str, Any],
           a_signed: dict[str, Any] | None, dkim: DkimKeys | None) -> None:
    ceiling_rate = rate(ceiling, "accepted")
    naive_rate = rate(naive, "accepted")
    print()
    print(f"digest delivery: {options.subscribers:,} confirmed subscribers in "
          f"{options.wards} wards, one digest per ward "
          f"({a_full['html_bytes']:,} bytes of HTML, "
          f"{ceiling['message_bytes']:,} bytes a message on the wire); "
          f"{os.cpu_count()} cores; Postfix smtp-sink on loopback; concurrency {CONCURRENCY}")
    print()
    header = (f"{'':44} {'messages':>9} {'wall s':>7} {'msg/s':>7} {'x ceiling':>9} "
              f"{'x naive':>8} {'peak RSS MB':>12}")
    print(header)
    print("-" * len(header))

    def row(label: str, messages: int, wall: float, peak: str) -> None:
        per_second = messages / wall
        print(f"{label:44} {messages:>9,} {wall:>7.1f} {per_second:>7.0f} "
              f"{per_second / ceiling_rate:>9.2f} {per_second / naive_rate:>8.1f} {peak:>12}")

    row("A  SQLite, one process (queue + deliver_due)", a_full["sent"], a_full["wall_seconds"],
        f"{a_full['peak_rss_mb']:.0f}")
    signed = "" if dkim is None else f", DKIM {dkim.label()}"
    if a_signed is not None:
        row(f"A  SQLite, one process{signed}", a_signed["sent"], a_signed["wall_seconds"],
            f"{a_signed['peak_rss_mb']:.0f}")
    if b is not None:
        row(f"B  PostgreSQL, two `alerts worker`{signed}", b["sent"], b["wall_seconds"],
            " / ".join(f"{p:.0f}" for p in b["peak_rss_mb"]))
    row(f"baseline 1: sink ceiling (best of {CEILING_ROUNDS})", ceiling["accepted"],
        ceiling["wall_seconds"], f"{ceiling['peak_rss_mb']:.0f}")
    row(f"baseline 2: naive pipeline (sample of {naive['accepted']:,})", naive["accepted"],
        naive["wall_seconds"], f"{naive['peak_rss_mb']:.0f}")
    print()
    sending = a_full["wall_seconds"] - a_full["queue_seconds"]
    print(f"A: queueing (render once per ward + fan-out) took {a_full['queue_seconds']:.1f} s "
          f"of the {a_full['wall_seconds']:.1f} s; sending {sending:.1f} s "
          f"({a_full['sent'] / sending:.0f} msg/s)")
    if b is not None:
        print(f"B: queueing took {b['queue_seconds']:.1f} s (the workers were already sending); "
              "worker RSS idle -> peak: " + ", ".join(
                  f"{idle:.0f} -> {peak:.0f} MB" for idle, peak in
                  zip(b["rss_before_mb"], b["peak_rss_mb"], strict=True))
              + f"; exit status on SIGTERM {b['exit_codes']}; outbox {b['by_status']}")
    print()
    print("memory as the list grows (A, one process; RSS before the work starts -> peak):")
    for result in (a_small, a_full):
        print(f"  {result['sent']:>9,} subscribers: {result['rss_before_mb']:.0f} MB -> "
              f"{result['peak_rss_mb']:.0f} MB peak, {rate(result):.0f} msg/s")
    print(f"  peak ratio {a_full['peak_rss_mb'] / a_small['peak_rss_mb']:.2f} for "
          f"{a_full['sent'] / a_small['sent']:.0f}x the subscribers")
    print()
    print("A ends when deliver_due returns (last row committed as sent); B at the first poll "
          f"({POLL_SECONDS * 1000:.0f} ms) that finds no row queued or in flight; smtp-sink's "
          "own counter agreed with the outbox in every run.")
    if b is not None:
        print(f"The ceiling is one sender process on one core; B runs two, each with "
              f"{CONCURRENCY} connections, so its ratio to the ceiling can pass 1.")
    print(f"ceiling rounds: {', '.join(f'{r:.1f}' for r in ceiling['rounds'])} s for "
          f"{ceiling['messages']:,} messages each; load average at the start "
          f"{options.load_at_start:.2f}, at the end {os.getloadavg()[0]:.2f} (other work on "
          "the machine lowers every figure)")


def report_signing(a_full: dict[str, Any], a_signed: dict[str, Any],
                   signing: dict[str, Any], dkim: DkimKeys) -> None:
    print()
    print(f"DKIM, same run: A again on a fresh database of the same {a_signed['sent']:,} "
          f"subscribers, every message signed ({dkim.label()}, relaxed/relaxed)")
    for label, result in (("A  signing off", a_full), ("A  signing on", a_signed)):
        sending = result["wall_seconds"] - result["queue_seconds"]
        print(f"  {label:28} {result['sent']:>9,} messages {result['wall_seconds']:>7.1f} s "
              f"{rate(result):>6.0f} msg/s; sending alone {sending:.1f} s "
              f"({result['sent'] / sending:.0f} msg/s); peak RSS {result['peak_rss_mb']:.0f} MB")
    print(f"  signing on / off: {rate(a_signed) / rate(a_full):.2f} x the messages per second")
    build = signing["build_us"]
    print(f"signing cost per message ({signing['message_bytes']:,}-byte digest, body hash "
          f"included; CPU time, best of {SIGN_ROUNDS} rounds of {signing['messages']}; one "
          "core):")
    for label, key in (("the copy's own build (personalise_email)", "build_us"),
                       ("RSA-2048 (alerts.mail.dkim)", "rsa_us"),
                       ("Ed25519 (alerts.mail.dkim)", "ed25519_us"),
                       ("RSA-2048 + Ed25519 (alerts.mail.dkim)", "both_us"),
                       ("RSA-2048, dkimpy's own dkim.sign", "dkimpy_rsa_us")):
        print(f"  {label:44} {signing[key]:>8.0f} us/message {signing[key] / build:>6.1f} x build")


if __name__ == "__main__":
    main()

"""Reading RSS 2.0 and Atom documents into items (pure: bytes in, items out)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.sources.items import ItemKind
from alerts.sources.registry import SourceError
from alerts.sources.rss import parse_feed

FEED_URL = "https://snt.police.example/riverside/feed.xml"

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
  <channel>
    <title>Riverside Safer Neighbourhood Team</title>
    <link>https://snt.police.example/riverside/</link>
    <description>Updates from your ward team</description>
    <item>
      <title>Arrest after  string of shed break-ins</title>
      <link>/riverside/news/shed-arrest</link>
      <guid isPermaLink="false">riverside-2026-041</guid>
      <pubDate>Mon, 02 Mar 2026 09:30:00 +0000</pubDate>
      <description>&lt;p&gt;Thanks to a resident's call we arrested a man on Mill Lane.&lt;/p&gt;
        &lt;script&gt;track()&lt;/script&gt;</description>
    </item>
    <item>
      <title>Keep your bike safe this spring</title>
      <link>https://snt.police.example/riverside/news/bikes</link>
      <category>Crime Prevention</category>
      <description>&lt;ul&gt;&lt;li&gt;Use a D-lock&lt;/li&gt;&lt;/ul&gt;</description>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Northfield ward team</title>
  <id>tag:snt.police.example,2026:northfield</id>
  <updated>2026-03-04T18:00:00+00:00</updated>
  <entry>
    <id>tag:snt.police.example,2026:northfield/17</id>
    <title type="html">Fish &amp;amp; chip shop &lt;b&gt;burglary&lt;/b&gt; appeal</title>
    <link rel="alternate" href="https://snt.police.example/northfield/17"/>
    <updated>2026-03-04T18:00:00+01:00</updated>
    <content type="html">&lt;p&gt;Did you see anyone on Station Road on Tuesday?&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>tag:snt.police.example,2026:northfield/18</id>
    <title>Doorstep callers</title>
    <published>2026-03-05T08:00:00Z</published>
    <category term="scams" label="Advice for older residents"/>
    <content type="text">Never let a caller in without checking.
Ring the company first.</content>
  </entry>
</feed>
"""


def test_rss_items_are_read_with_guid_title_link_and_date() -> None:
    first, second = parse_feed(RSS, url=FEED_URL).items
    assert first.guid == "riverside-2026-041"
    assert first.title == "Arrest after string of shed break-ins"
    assert first.link == "https://snt.police.example/riverside/news/shed-arrest"
    assert first.published_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert first.kind == ItemKind.POST
    assert second.published_at is None


def test_rss_html_is_sanitised() -> None:
    first, _ = parse_feed(RSS, url=FEED_URL).items
    assert "arrested a man on Mill Lane" in first.body_html
    assert "script" not in first.body_html
    assert "track()" not in first.body_html


def test_an_item_without_guid_is_known_by_its_link() -> None:
    _, second = parse_feed(RSS, url=FEED_URL).items
    assert second.guid == "https://snt.police.example/riverside/news/bikes"


def test_a_crime_prevention_category_makes_an_advice_item() -> None:
    _, second = parse_feed(RSS, url=FEED_URL).items
    assert second.kind == ItemKind.ADVICE


def test_atom_entries_are_read_with_times_in_utc() -> None:
    first, second = parse_feed(ATOM, url=FEED_URL).items
    assert first.guid == "tag:snt.police.example,2026:northfield/17"
    assert first.link == "https://snt.police.example/northfield/17"
    assert first.published_at == datetime(2026, 3, 4, 17, 0, tzinfo=UTC)
    assert second.published_at == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert first.published_at.tzinfo is not None


def test_html_titles_become_plain_text_with_entities_unescaped() -> None:
    first, _ = parse_feed(ATOM, url=FEED_URL).items
    assert first.title == "Fish & chip shop burglary appeal"


def test_plain_text_content_is_escaped_into_paragraphs() -> None:
    _, second = parse_feed(ATOM, url=FEED_URL).items
    assert second.body_html == (
        "<p>Never let a caller in without checking.<br>\nRing the company first.</p>"
    )


def test_a_category_label_mentioning_advice_makes_an_advice_item() -> None:
    first, second = parse_feed(ATOM, url=FEED_URL).items
    assert first.kind == ItemKind.POST
    assert second.kind == ItemKind.ADVICE


def test_an_entry_without_id_or_link_gets_a_stable_hash_guid() -> None:
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
      <item><title>Speed watch on the high street</title>
      <pubDate>Fri, 06 Mar 2026 12:00:00 +0000</pubDate></item>
      <item><description>No title here</description></item>
    </channel></rss>"""
    first, second = parse_feed(feed, url=FEED_URL).items
    assert first.guid.startswith("sha256:")
    assert parse_feed(feed, url=FEED_URL).items[0].guid == first.guid
    assert first.link is None
    assert second.title == "(untitled)"
    assert second.guid != first.guid


def test_a_well_formed_feed_without_entries_gives_nothing() -> None:
    empty_rss = b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    empty_atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Quiet</title></feed>'
    assert parse_feed(empty_rss, url=FEED_URL).items == []
    assert parse_feed(empty_atom, url=FEED_URL).items == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"<!DOCTYPE html><html><head><title>Our ward</title></head><body><p>Hi<br></body></html>",
         "HTML page"),
        (b"<html><body><p>Welcome to the ward page</p></body></html>", "HTML page"),
        (bytes(range(256)) * 4, "not well-formed"),
        (b"", "empty"),
        (b'<?xml version="1.0"?><ward><name>Riverside</name></ward>', "no <rss>, <feed>"),
    ],
)
def test_a_document_that_is_not_a_feed_is_refused_with_a_reason(
    content: bytes, reason: str
) -> None:
    with pytest.raises(SourceError) as raised:
        parse_feed(content, url=FEED_URL)
    message = str(raised.value)
    assert message.startswith("the document is not an RSS or Atom feed: ")
    assert reason in message
    assert "\n" not in message


def test_bytes_that_name_a_local_file_are_not_read_from_disk(tmp_path: Path) -> None:
    # feedparser opens a bytes value as a file path if it can; parse_feed must never let it.
    path = tmp_path / "feed.xml"
    path.write_bytes(RSS)
    with pytest.raises(SourceError):
        parse_feed(str(path).encode(), url=FEED_URL)

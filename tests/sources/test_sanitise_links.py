"""A link the sanitiser leaves without an address is no link: its text stays, its tag goes."""

from __future__ import annotations

from alerts.sources.sanitise import sanitise_html


def test_a_link_whose_address_was_refused_keeps_its_text_and_loses_its_tag() -> None:
    cleaned = sanitise_html(
        '<p>Read <a href="javascript:alert(1)" title="a > b">our advice</a>, '
        '<a href="/relative">this</a>, <A HREF="data:text/html,x">that</A> and '
        '<a name="top">the <b>top</b></a>.</p>')
    assert cleaned == "<p>Read our advice, this, that and the <b>top</b>.</p>"


def test_a_link_with_an_address_is_kept_beside_one_without() -> None:
    cleaned = sanitise_html(
        '<a href="https://police.example/a?x=1&y=2">kept</a>'
        '<a title=\'say href="https://x.example/"\'>dropped</a>')
    assert cleaned == ('<a href="https://police.example/a?x=1&amp;y=2" '
                       'rel="noopener noreferrer">kept</a>dropped')

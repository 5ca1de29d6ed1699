"""Sanitising feed and officer HTML for email, and the text <-> HTML conversions."""

from __future__ import annotations

from alerts.sources.sanitise import as_safe_html, html_to_text, looks_like_html, sanitise_html


def test_script_and_style_are_removed_with_their_contents() -> None:
    cleaned = sanitise_html(
        "<p>Shed break-ins are up.</p><script>steal(document.cookie)</script>"
        "<style>p { display: none }</style>"
    )
    assert cleaned == "<p>Shed break-ins are up.</p>"


def test_event_handler_and_style_attributes_are_removed() -> None:
    cleaned = sanitise_html(
        '<p style="color:red" onclick="go()">Lock your shed</p>'
        '<img src="x" onerror="go()"><a href="https://example.org" onmouseover="go()">more</a>'
    )
    assert "onclick" not in cleaned
    assert "onerror" not in cleaned
    assert "onmouseover" not in cleaned
    assert "style" not in cleaned
    assert "<img" not in cleaned
    assert "Lock your shed" in cleaned


def test_only_web_mail_and_phone_links_survive() -> None:
    cleaned = sanitise_html(
        '<a href="javascript:alert(1)">bad</a> <a href="data:text/html,x">data</a> '
        '<a href="https://police.example/advice">web</a> '
        '<a href="mailto:snt@police.example">mail</a> <a href="tel:101">phone</a> '
        '<a href="/relative">relative</a>'
    )
    assert "javascript:" not in cleaned
    assert "data:" not in cleaned
    assert "/relative" not in cleaned
    assert 'href="https://police.example/advice"' in cleaned
    assert 'href="mailto:snt@police.example"' in cleaned
    assert 'href="tel:101"' in cleaned


def test_links_open_without_passing_on_the_opener_or_referrer() -> None:
    cleaned = sanitise_html('<a href="https://police.example/" title="Our team">team</a>')
    assert cleaned == (
        '<a href="https://police.example/" title="Our team" rel="noopener noreferrer">team</a>'
    )


def test_allowed_structure_is_kept_and_other_tags_are_unwrapped() -> None:
    cleaned = sanitise_html(
        "<h3>Catalytic converters</h3><ul><li><strong>Park</strong> in a garage</li></ul>"
        "<blockquote><em>Mark it</em></blockquote><table><tr><td>cell</td></tr></table>"
        "<span>plain</span>"
    )
    assert cleaned == (
        "<h3>Catalytic converters</h3><ul><li><strong>Park</strong> in a garage</li></ul>"
        "<blockquote><em>Mark it</em></blockquote>cellplain"
    )


def test_plain_text_becomes_escaped_paragraphs_with_line_breaks() -> None:
    html = as_safe_html("Tea & biscuits <free>\nAll welcome\n\nAsk for PC Khan")
    assert html == "<p>Tea &amp; biscuits &lt;free&gt;<br>\nAll welcome</p>\n<p>Ask for PC Khan</p>"


def test_text_with_a_less_than_sign_is_not_taken_for_html() -> None:
    assert not looks_like_html("Burglaries fell (<5 this month) and I <3 this ward")
    assert looks_like_html("We were at the <b>library</b>")


def test_html_body_is_sanitised_rather_than_escaped() -> None:
    assert as_safe_html("<p>Hi</p><script>x()</script>") == "<p>Hi</p>"


def test_text_part_separates_paragraphs_and_lists_items() -> None:
    text = html_to_text(
        "<p>Garden tools keep vanishing.</p>"
        "<ul><li>Lock the shed</li><li>Mark your tools</li></ul>"
        "<p>Thanks,<br>The   ward team</p>"
    )
    assert text == (
        "Garden tools keep vanishing.\n\n- Lock the shed\n- Mark your tools\n\n"
        "Thanks,\nThe ward team"
    )


def test_text_part_shows_link_targets_once() -> None:
    text = html_to_text(
        '<p>Read <a href="https://police.example/bikes">our bike advice</a> or mail '
        '<a href="mailto:snt@police.example">snt@police.example</a>, '
        'see <a href="https://police.example/">https://police.example/</a>.</p>'
    )
    assert text == (
        "Read our bike advice (https://police.example/bikes) or mail snt@police.example, "
        "see https://police.example/."
    )


def test_text_part_unescapes_entities_and_drops_scripts() -> None:
    text = html_to_text("<p>Fish &amp; chips&nbsp;van &lt;Fridays&gt;</p><script>x()</script>")
    assert text == "Fish & chips van <Fridays>"

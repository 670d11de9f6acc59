"""A step's Markdown as HTML: runnable blocks get a Run button; an author's HTML and scripts never run."""

import re
from html.parser import HTMLParser

import pytest

from labs.markdown import step_html


class Elements(HTMLParser):
    """Every element of a piece of HTML, as (tag, {attribute: value}), and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def tagged(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for found, attrs in self.found if found == tag]


def test_it_gives_a_runnable_block_a_run_button_that_carries_its_code():
    code = "echo \"quoted\" > ~/step1 && echo '<b>' & echo 'it''s'"

    elements = Elements(step_html(f"Try:\n\n```bash run\n{code}\n```\n"))

    (button,) = elements.tagged("button")
    assert button["data-run"] == code
    assert button["type"] == "button"
    assert elements.tagged("code") == [{"class": "language-bash"}]
    assert code in "".join(elements.text)


def test_it_finds_the_word_run_anywhere_in_the_info_string():
    assert Elements(step_html("```run\nls\n```\n")).tagged("button")[0]["data-run"] == "ls"
    assert Elements(step_html("```sh title run\nls -l\n```\n")).tagged("button")[0]["data-run"] == "ls -l"


@pytest.mark.parametrize("info", ["bash", "", "running", "bash runner", "bash --run"])
def test_it_renders_other_blocks_as_plain_code(info):
    elements = Elements(step_html(f"```{info}\nls -l\n```\n\n    indented\n"))

    assert elements.tagged("button") == []
    assert [tag for tag, _ in elements.found] == ["pre", "code", "pre", "code"]


def test_it_keeps_a_runnable_blocks_code_inside_its_attribute():
    code = '" onclick="alert(1)" data-x="'

    elements = Elements(step_html(f"```bash run\n{code}\n```\n"))

    (button,) = elements.tagged("button")
    assert set(button) == {"type", "class", "data-run", "title"}
    assert button["data-run"] == code


def test_it_keeps_a_made_up_language_inside_its_class():
    elements = Elements(step_html('```"><script>alert(1)</script> run\nls\n```\n'))

    assert "script" not in [tag for tag, _ in elements.found]
    assert set(elements.tagged("code")[0]) == {"class"}


@pytest.mark.parametrize(
    "text",
    [
        '<script>alert("xss")</script>',
        'Inline <script>alert("xss")</script> too.',
        "<img src=x onerror=alert(1)>",
        '<a href="https://example.com" onclick="alert(1)">link</a>',
        "<iframe src=https://evil.example></iframe>",
        "<svg onload=alert(1)>",
        "<!-- a comment --><style>body{display:none}</style>",
    ],
)
def test_it_shows_the_authors_html_as_text(text):
    html = step_html(text)

    elements = Elements(html)
    assert {tag for tag, _ in elements.found} <= {"p"}
    assert not [name for _, attrs in elements.found for name in attrs if name.startswith("on")]
    assert "<" not in "".join(elements.text).replace(text, "")  # the text itself is all there is


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert(1))",
        "[x]( javascript:alert(1) )",
        "[x](&#106;avascript:alert(1))",
        "[x](javascript&colon;alert(1))",
        "[x](java\tscript:alert(1))",
        "<javascript:alert(1)>",
        "[x][ref]\n\n[ref]: javascript:alert(1)",
        "![x](javascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
        "[x](file:///etc/passwd)",
    ],
)
def test_it_leads_no_link_or_image_to_a_script(text):
    elements = Elements(step_html(text))

    addresses = [attrs.get(name) or "" for _, attrs in elements.found for name in ("href", "src") if name in attrs]
    for address in addresses:
        # What a browser would make of it: control characters and spaces dropped, any case.
        scheme = re.sub(r"[\x00-\x20]", "", address).lower().split(":", 1)
        assert len(scheme) == 1 or scheme[0] not in {"javascript", "vbscript", "data", "file"}, address


def test_it_opens_a_harmless_link_in_a_new_tab():
    elements = Elements(step_html("See [the docs](https://docs.docker.com/) and <https://example.com>."))

    assert elements.tagged("a") == [
        {"href": "https://docs.docker.com/", "target": "_blank", "rel": "noopener noreferrer"},
        {"href": "https://example.com", "target": "_blank", "rel": "noopener noreferrer"},
    ]


def test_it_renders_the_usual_markdown():
    html = step_html(
        "# Title\n\nSome **bold**, `code` and ~~gone~~.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )

    tags = [tag for tag, _ in Elements(html).found]
    assert tags[:2] == ["h1", "p"]
    assert {"strong", "code", "s", "ul", "li", "table", "td"} <= set(tags)

"""A step's Markdown as the HTML shown beside the terminal.

The text comes from a template's author, and the page shows it inside the
playground's own origin: raw HTML in it is shown as text, never parsed, and
a link or image may only lead to a harmless address (markdown-it's own
check refuses `javascript:`, `vbscript:`, `file:` and non-image `data:`).
Links open in a new tab, so that the terminal stays where it is.

A code block whose info string holds the word `run` (```` ```bash run ````)
gets a Run button whose `data-run` carries the code: the page types it into
the terminal.
"""

import functools

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

RUN_WORD = "run"


def step_html(text: str) -> str:
    """The HTML of a step's Markdown (see the module's docstring)."""
    return _renderer().render(text)


@functools.cache
def _renderer() -> MarkdownIt:
    renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    renderer.add_render_rule("fence", _fence)
    renderer.add_render_rule("link_open", _link_open)
    return renderer


def _fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    words = token.info.split()
    language = next((word for word in words if word != RUN_WORD), "")
    language_class = f' class="language-{escapeHtml(language)}"' if language else ""
    code = f"<pre><code{language_class}>{escapeHtml(token.content)}</code></pre>\n"
    if RUN_WORD not in words:
        return code
    command = token.content.rstrip("\n")
    return (
        f'<div class="step-run">{code}'
        f'<button type="button" class="btn step-run-button" data-run="{escapeHtml(command)}" '
        f'title="Type this into the terminal and press Enter">Run</button></div>\n'
    )


def _link_open(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    token.attrSet("target", "_blank")
    token.attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)

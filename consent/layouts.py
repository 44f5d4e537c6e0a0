"""A message's final HTML and text: the body inside its layout, CSS inlined, a text part when none is given.

Mail clients (Gmail, Outlook) drop or mangle `<style>` blocks, so the CSS is inlined into `style`
attributes (css-inline, with remote stylesheets never fetched: a template must not make Rowbell call
out). A step without a text body gets one made from the final HTML (inscriptis, with links written out
so the unsubscribe link survives in the text part).
"""

from __future__ import annotations

from typing import Any

import css_inline
from inscriptis import get_text
from inscriptis.model.config import ParserConfig

from integrations.templating import render_layout

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)
_TEXT_CONFIG = ParserConfig(display_links=True)

STARTER_LAYOUT = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<style>
  body { margin: 0; background: #f4f5f7; font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; }
  .wrap { max-width: 600px; margin: 0 auto; padding: 24px; background: #ffffff; color: #1d2330; }
  .footer { max-width: 600px; margin: 0 auto; padding: 16px 24px; color: #6b7280; font-size: 12px; }
  .footer a { color: #6b7280; }
</style>
</head>
<body>
<div class="wrap">
{% block content %}{% endblock %}
</div>
<div class="footer">
  <p>Example Inc., 1 Example Street, Springfield (replace with your postal address)</p>
  {% if unsubscribe_url %}<p><a href="{{ unsubscribe_url }}">Unsubscribe or change which emails you get</a></p>{% endif %}
</div>
</body>
</html>
"""


def compose(body_html: str, layout_html: str | None, context: dict[str, Any]) -> str:
    """The final HTML: the body inside the layout (if any), with its CSS inlined."""
    if not body_html and not layout_html:
        return ""
    html = render_layout(layout_html, body_html, context) if layout_html else body_html
    return inline_css(html)


def inline_css(html: str) -> str:
    if "<style" not in html.lower():
        return html  # nothing to inline: leave the author's HTML exactly as written
    try:
        return _INLINER.inline(html)
    except ValueError:
        return html  # CSS the inliner cannot parse: sending it as written beats failing the message


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML message (links as `text [url]`)."""
    if not html:
        return ""
    return get_text(html, _TEXT_CONFIG).strip() + "\n"

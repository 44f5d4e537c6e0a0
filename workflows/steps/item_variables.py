"""Which item fields a template or an expression reads, and a warning for those the item lacks.

Used by the step forms' template and expression fields (their `variables_warning`).
"""

from __future__ import annotations

import difflib

from jinja2 import TemplateSyntaxError, nodes

from integrations.templating import TEXT_ENV


def referenced_fields(text: str, expression: bool = False) -> list[str]:
    """The item fields a template (or an expression) reads: `item.name`, `item['name']`, in order."""
    source = "{{ " + text + " }}" if expression else text
    try:
        tree = TEXT_ENV.parse(source or "")
    except TemplateSyntaxError:
        return []  # the syntax error is reported on its own
    found: list[str] = []
    methods = {id(call.node) for call in tree.find_all(nodes.Call)}  # item.get('x'), item.items()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not isinstance(node, nodes.Getattr | nodes.Getitem):
            continue
        if not (isinstance(node.node, nodes.Name) and node.node.name == "item") or id(node) in methods:
            continue
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name not in found:
            found.append(name)
    return found


def unknown_variables_warning(text: str, known: list[str], expression: bool = False) -> str:
    """ "Unknown variable item.nmae (did you mean item.name?)", or "" when every field is known.

    Only when the fields at this step are known (a webhook without a sample knows none): a warning, not
    an error, since a row can carry fields the builder cannot see.
    """
    if not known or not isinstance(text, str):
        return ""
    unknown = [name for name in referenced_fields(text, expression) if name not in known]
    if not unknown:
        return ""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"item.{name}" + (f" (did you mean item.{close[0]}?)" if close else ""))
    return (
        "Unknown variable"
        + ("s " if len(parts) > 1 else " ")
        + ", ".join(parts)
        + "; the item has no such field here."
    )

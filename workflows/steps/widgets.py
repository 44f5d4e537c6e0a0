"""The controls of a step's form in the builder's panel: each draws itself from its own template under
templates/workflows/widgets/ (a template, SQL, an expression, JSON, a secret), and a widget whose field
needs more room than a control says which layout (templates/workflows/fields/) draws the field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.datastructures import MultiValueDict


class TextInput(forms.TextInput):
    template_name = "workflows/widgets/text.html"


class NumberInput(forms.NumberInput):
    template_name = "workflows/widgets/number.html"


class Select(forms.Select):
    """A select that keeps a saved value the options no longer offer visible, marked "(not found)"."""

    template_name = "workflows/widgets/select.html"
    empty_label = "Choose…"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        offered = {str(option["value"]) for group in context["widget"]["optgroups"] for option in group[1]}
        shown = [str(v) for v in context["widget"]["value"] if v not in (None, "")]
        context["widget"]["missing"] = next((v for v in shown if v not in offered), "")
        context["widget"]["has_empty"] = "" in offered
        return context


class CheckboxList(forms.CheckboxSelectMultiple):
    template_name = "workflows/widgets/checkbox_list.html"
    layout = "workflows/fields/choices.html"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if isinstance(data, MultiValueDict):
            return data.getlist(name)
        value = data.get(name)
        return value if isinstance(value, list | tuple) or value is None else [value]


class Checkbox(forms.CheckboxInput):
    """Ticked: True, or "on", "true", "1" from a form or a file; anything else reaches the field as is,
    which says that it wants true or false."""

    template_name = "workflows/widgets/checkbox.html"
    layout = "workflows/fields/checkbox.html"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class TemplateArea(forms.Textarea):
    """A Jinja2 template over the item: monospace, and the variable chips insert into it."""

    template_name = "workflows/widgets/template.html"
    minimum_rows = 1

    def __init__(self, attrs: dict[str, Any] | None = None):
        forms.Widget.__init__(self, attrs)  # not Textarea's 40×10: the panel's width, the text's height

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        text = context["widget"]["value"] or ""
        shown = context["widget"]["attrs"]
        # As tall as its text (within bounds), so a one-line subject stays one line.
        shown["rows"] = min(14, max(self.minimum_rows, str(text).count("\n") + 1))
        return context


class SqlArea(TemplateArea):
    template_name = "workflows/widgets/sql.html"
    minimum_rows = 4


class JsonArea(TemplateArea):
    template_name = "workflows/widgets/json.html"
    minimum_rows = 4


class LinesArea(TemplateArea):
    """Plain text, one entry a line (a trigger's searchable fields)."""

    template_name = "workflows/widgets/json.html"
    minimum_rows = 2


class ExpressionInput(forms.TextInput):
    template_name = "workflows/widgets/expression.html"


class SecretInput(forms.PasswordInput):
    """Never shows the saved secret; an empty box keeps it (the value counts as not posted)."""

    template_name = "workflows/widgets/secret.html"

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not data.get(name)


class PathsWidget(forms.Widget):
    """A branch's paths: rows posted as <name>-<n>-<key> with <name>-count (or a list, from a file)."""

    # Drawn by its field layout, which needs the panel's context (the branch's add/remove/move URLs).
    layout = "workflows/fields/paths.html"
    KEYS = ("id", "label", "match", "field", "operator", "value", "expression")
    MAX_ROWS = 50

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}-count" not in data and name not in data

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if f"{name}-count" not in data:
            return data.get(name)
        raw = str(data.get(f"{name}-count", ""))
        count = min(int(raw), self.MAX_ROWS) if raw.isdigit() else 0
        rows = []
        for index in range(count):
            prefix = f"{name}-{index}-"
            row = {key: data[prefix + key] for key in self.KEYS if prefix + key in data}
            if row.get("id"):
                rows.append(row)
        return rows

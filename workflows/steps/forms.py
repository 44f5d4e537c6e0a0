"""Each step kind's settings are a Django form (`StepKind.form_class`), and a stored config is the typed
settings built from its cleaned data (`StepForm.settings_class`, a dataclass per kind).

One form serves every door: the builder's panel (bound to the posted form merged over the saved config),
workflow files, publishing and the engine (bound to a config dict). Fields are Django fields; the
widgets that need more than an <input> (template, SQL, expression, JSON, secret, a branch's paths) are
widgets with their own `template_name` under templates/workflows/widgets/. A field that names a row of
the tenant is a `ReferenceField` (workflows/steps/references.py): with a tenant, its queryset is that
tenant's rows, so another workspace's id is refused like a missing one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from django import forms
from django.forms.renderers import TemplatesSetting
from django.utils.datastructures import MultiValueDict

from integrations.json_input import JsonInputError, check_storable, load_json
from integrations.templating import validate_expression, validate_template
from workflows.steps.item_variables import unknown_variables_warning

PREFIX = "config"


class StepSettings:
    """A kind's typed settings (subclasses are dataclasses). `to_json` is what Step.config stores;
    `from_json` reads a stored config back (keys it does not know are ignored, missing ones default)."""

    # Keys left out of the stored config while they hold their empty value (so files stay short).
    omitted_when_empty: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_json(cls, config: Mapping[str, Any] | None) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in (config or {}).items() if key in names})

    def to_json(self) -> dict[str, Any]:
        stored = dataclasses.asdict(self)  # type: ignore[call-overload]
        for key in self.omitted_when_empty:
            if stored.get(key) in (None, "", False, []):
                stored.pop(key, None)
        return stored


# ---- widgets: each draws itself from its own template ----


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

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        text = context["widget"]["value"] or ""
        context["widget"]["rows"] = min(14, max(self.minimum_rows, str(text).count("\n") + 1))
        return context


class SqlArea(TemplateArea):
    template_name = "workflows/widgets/sql.html"
    minimum_rows = 4


class JsonArea(TemplateArea):
    template_name = "workflows/widgets/json.html"
    minimum_rows = 4


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


# ---- fields ----


class TextField(forms.CharField):
    """Text from a form or a file: anything that is not text is refused, not turned into text."""

    widget = TextInput
    not_text = "This must be text."

    def to_python(self, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise forms.ValidationError(self.not_text)
        return super().to_python(value)


class TemplateField(TextField):
    """A Jinja2 template: checked for syntax when saved, the error naming its line."""

    widget = TemplateArea

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        super().__init__(strip=False, **kwargs)

    def variables_warning(self, value: Any, known: list[str]) -> str:
        """Variables the template uses that the item does not have at this step (saved anyway)."""
        return unknown_variables_warning(value, known)

    def to_python(self, value: Any) -> str:
        text = super().to_python(value)
        return "" if not text.strip() else text

    def validate(self, value: Any) -> None:
        super().validate(value)
        problem = validate_template(value) if value else None
        if problem:
            raise forms.ValidationError(f"Template error on line {problem.line}: {problem.message}")


class ExpressionField(TextField):
    """A sandboxed Jinja2 expression over `item` (a condition)."""

    def variables_warning(self, value: Any, known: list[str]) -> str:
        return unknown_variables_warning(value, known, expression=True)

    widget = ExpressionInput
    missing = "Write an expression over the item, like item.plan == 'pro'."

    def __init__(self, **kwargs: Any):
        super().__init__(error_messages={"required": self.missing}, **kwargs)

    def validate(self, value: Any) -> None:
        super().validate(value)
        problem = validate_expression(value) if value else None
        if problem:
            raise forms.ValidationError(f"Expression error: {problem.message}")


class NumberField(forms.FloatField):
    """A number kept as the person wrote it: 3 stays 3, 1.5 stays 1.5 (a float field would store 3.0)."""

    widget = NumberInput

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("step", "any")

    def to_python(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        number = super().to_python(value)
        return int(number) if number is not None and number.is_integer() else number


class FlagField(forms.Field):
    """A tick box: true or false. From a file, only true/false (or on/off, 1/0) is accepted."""

    widget = Checkbox
    TRUE = ("on", "true", "1", "yes")
    FALSE = ("", "off", "false", "0", "no")

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> bool:
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in self.TRUE + self.FALSE:
            return value.strip().lower() in self.TRUE
        raise forms.ValidationError(f"{self.label} must be true or false.")


class ChoiceField(forms.ChoiceField):
    widget = Select


class MultipleChoiceField(forms.MultipleChoiceField):
    widget = CheckboxList


class JsonField(forms.JSONField):
    """JSON typed in the panel (a string) or given by a file (already parsed); NUL characters, lone
    surrogates and deep nesting are refused with where they are (integrations/json_input.py)."""

    widget = JsonArea

    def to_python(self, value: Any) -> Any:
        if not isinstance(value, str):
            parsed = value
        elif not value.strip():
            return None
        else:
            try:
                parsed = load_json(value)
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(
                    f"This is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."
                ) from None
            except JsonInputError as exc:
                raise forms.ValidationError(str(exc)) from None
        try:
            check_storable(parsed)
        except JsonInputError as exc:
            raise forms.ValidationError(str(exc)) from None
        return parsed

    def bound_data(self, data: Any, initial: Any) -> Any:
        # A saved config holds the parsed value, not its text: it is drawn as JSON again; text is
        # shown back as typed, valid or not.
        return data if not isinstance(data, str) else forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class SecretField(TextField):
    widget = SecretInput


class PickerField(TextField):
    """A name chosen from what the tenant's data source offers (schema, table); the options are read
    when the panel is drawn (`StepForm.load_options`), not when a config is checked."""

    widget = Select


class PickerListField(forms.MultipleChoiceField):
    """Names chosen from the data source (a table's columns), options read when drawn."""

    widget = CheckboxList

    def valid_value(self, value: Any) -> bool:
        return True


# ---- the form ----


class StepBoundField(forms.BoundField):
    """What the panel's field templates read: one error line, a warning, and whether it is folded away."""

    @property
    def auto_id(self) -> str:
        return f"f-{self.name}"

    def build_widget_attrs(self, attrs: dict[str, Any], widget: forms.Widget | None = None) -> dict[str, Any]:
        attrs = super().build_widget_attrs(attrs, widget)
        attrs.pop("aria-describedby", None)  # the help and error lines are found by their own ids
        attrs.pop("aria-invalid", None)
        shown = {"id": self.auto_id, **attrs}
        if self.error:
            shown["aria-invalid"] = "true"
        return shown

    @property
    def error(self) -> str:
        if self.name in self.form.hidden_errors:
            return ""
        return self.form.extra_errors.get(self.name) or (self.errors[0] if self.errors else "")

    @property
    def warning(self) -> str:
        return self.form.warnings.get(self.name, "")

    @property
    def options_error(self) -> str:
        return self.form.options_errors.get(self.name, "")

    @property
    def is_advanced(self) -> bool:
        return self.name in self.form.advanced

    @property
    def layout(self) -> str:
        """The template that lays the field out around its control: the widget's, else label above."""
        return getattr(self.field.widget, "layout", "workflows/fields/labelled.html")

    @property
    def rows(self) -> list[dict[str, Any]]:
        """A list of settings rows (a branch's paths), each with its index (the names its inputs post under)."""
        value = self.raw
        rows = value if isinstance(value, list) else []
        return [{**row, "index": index} for index, row in enumerate(rows) if isinstance(row, dict)]

    @property
    def raw(self) -> Any:
        return self.form.raw(self.name)


class StepForm(forms.Form):
    """A step kind's settings. Bind it with `StepForm(config, tenant_id=...)`: the config's keys are
    the fields' names. Without a tenant, reference fields only check that they hold an id."""

    settings_class: ClassVar[type[StepSettings]]
    advanced: ClassVar[tuple[str, ...]] = ()  # folded under "Retries"
    default_renderer = TemplatesSetting()
    bound_field_class = StepBoundField
    use_required_attribute = False  # the panel saves as the person types: it never blocks a submit

    def __init__(self, config: Mapping[str, Any], *, tenant_id: int | None = None):
        super().__init__(data={f"{PREFIX}-{key}": value for key, value in config.items()}, prefix=PREFIX)
        self.stored = config
        self.tenant_id = tenant_id
        self.hidden_errors: set[str] = set()
        self.extra_errors: dict[str, str] = {}
        self.warnings: dict[str, str] = {}
        self.options_errors: dict[str, str] = {}
        for field in self.fields.values():
            bind = getattr(field, "for_tenant", None)
            if bind is not None and tenant_id is not None:
                bind(tenant_id)

    def raw(self, name: str) -> Any:
        """A field's value as given (posted or saved), before cleaning."""
        return self.data.get(self.add_prefix(name))

    def error_messages(self) -> dict[str, str]:
        """{field: the first message}; a problem of the whole form is named after its first field."""
        messages = {name: str(errors[0]) for name, errors in self.errors.items() if name != "__all__"}
        if "__all__" in self.errors:
            messages.setdefault(next(iter(self.fields)), str(self.errors["__all__"][0]))
        return messages

    def settings(self) -> StepSettings:
        """The typed settings of a valid form."""
        return self.settings_class(**self.settings_kwargs())

    def settings_kwargs(self) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(self.settings_class)}  # type: ignore[arg-type]
        return {key: value for key, value in self.cleaned_data.items() if key in names}

    def stored_config(self) -> dict[str, Any]:
        return self.settings().to_json()

    def draft_config(self, saved: Mapping[str, Any]) -> dict[str, Any]:
        """What an invalid form keeps: each field's clean value, or as typed where it is wrong, so that
        nothing typed is lost; a reference that is refused keeps the saved value (never stored as typed).
        Saved keys that are no field of the form (a Slack step's encrypted URL) stay."""
        draft = dict(saved)
        for name, field in self.fields.items():
            if name in self.cleaned_data:
                draft[name] = getattr(field, "stored_value", lambda v: v)(self.cleaned_data[name])
            elif getattr(field, "refuses_as_typed", False):
                draft[name] = saved.get(name)
            elif not field.widget.value_omitted_from_data(self.data, {}, self.add_prefix(name)):
                draft[name] = self[name].raw
        return draft

    def load_options(self) -> None:
        """Fill the options that depend on the tenant's data (called only when the form is drawn)."""

    def panel_fields(self) -> list[str]:
        """The fields the panel shows (a wait shows only its mode's)."""
        return list(self.fields)


def blank(value: Any) -> bool:
    return value in (None, "", [])

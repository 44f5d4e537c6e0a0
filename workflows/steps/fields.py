"""The fields of the step kinds' forms: Django fields that read both a posted form (text) and a config
from a file or the API (typed values), with messages a person can act on."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from integrations.json_input import JsonInputError, check_storable, load_json
from integrations.templating import validate_expression, validate_template
from workflows.steps.item_variables import unknown_variables_warning
from workflows.steps.widgets import (
    Checkbox,
    CheckboxList,
    ExpressionInput,
    JsonArea,
    NumberInput,
    SecretInput,
    Select,
    TemplateArea,
    TextInput,
)


class TextField(forms.CharField):
    """Text from a form or a file: anything that is not text is refused, not turned into text."""

    widget: type[forms.Widget] = TextInput
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


UNIT_CHOICES = (("minutes", "minutes"), ("hours", "hours"), ("days", "days"))


def unit_field(label: str, initial: str) -> ChoiceField:
    """A duration's unit (waits, digest windows, throttle windows)."""
    return ChoiceField(
        label=label,
        initial=initial,
        choices=UNIT_CHOICES,
        required=False,
        error_messages={"invalid_choice": "Choose minutes, hours or days."},
    )


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

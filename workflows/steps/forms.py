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
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from django import forms
from django.forms.renderers import TemplatesSetting

from workflows.steps.errors import ConfigError

PREFIX = "config"


class StepSettings:
    """A kind's typed settings (subclasses are dataclasses). `to_json` is what Step.config stores;
    `from_json` reads a stored config back (keys it does not know are ignored, missing ones default)."""

    # Keys left out of the stored config while they hold their empty value (so files stay short).
    omitted_when_empty: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_json(cls, config: Mapping[str, Any] | None) -> Any:
        """The settings of a stored config; ConfigError names a setting it lacks (an unfinished draft's)."""
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        given = {f.name: config[f.name] for f in fields if config and f.name in config}
        missing = [
            f.name
            for f in fields
            if f.name not in given
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError({name: "This setting is not set yet." for name in missing})
        return cls(**given)

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        for key in self.omitted_when_empty:
            if stored.get(key) in (None, "", False, []):
                stored.pop(key, None)
        return stored


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
    def step_form(self) -> StepForm:
        return cast("StepForm", self.form)

    @property
    def error(self) -> str:
        """The field's one line of error: the panel's (`extra_errors`), hidden while the field is blank on
        a freshly opened step (`hidden_errors`)."""
        if self.name in self.step_form.hidden_errors:
            return ""
        return self.step_form.extra_errors.get(self.name, "")

    @property
    def warning(self) -> str:
        return self.step_form.warnings.get(self.name, "")

    @property
    def options_error(self) -> str:
        return self.step_form.options_errors.get(self.name, "")

    @property
    def is_advanced(self) -> bool:
        return self.name in self.step_form.advanced

    @property
    def is_window(self) -> bool:
        return self.name in getattr(self.step_form, "window_fields", ())

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
        return self.step_form.raw(self.name)


class StepForm(forms.Form):
    """A step kind's settings. Bind it with `StepForm(config, tenant_id=...)`: the config's keys are
    the fields' names. Without a tenant, reference fields only check that they hold an id."""

    settings_class: ClassVar[type[StepSettings]]
    advanced: ClassVar[tuple[str, ...]] = ()  # folded under "Retries"
    # Changing one of these changes what the other fields offer or which apply: the panel is drawn again.
    redraw_on: ClassVar[tuple[str, ...]] = ()
    default_renderer = TemplatesSetting()
    bound_field_class = StepBoundField
    use_required_attribute = False  # the panel saves as the person types: it never blocks a submit

    def __init__(self, config: Mapping[str, Any], *, tenant_id: int | None = None):
        super().__init__(data={f"{PREFIX}-{key}": value for key, value in config.items()}, prefix=PREFIX)
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
                draft[name] = self.cleaned_data[name]
            elif getattr(field, "refuses_as_typed", False):
                draft[name] = saved.get(name)
            elif not field.widget.value_omitted_from_data(self.data, {}, self.add_prefix(name)):
                draft[name] = self.raw(name)
        return draft

    def load_options(self) -> None:
        """Fill the options that depend on the tenant's data (called only when the form is drawn)."""

    def __getitem__(self, name: str) -> StepBoundField:
        """A field of the form, as the StepBoundField `bound_field_class` makes it (for type checking)."""
        return cast(StepBoundField, super().__getitem__(name))

    def panel_fields(self) -> list[str]:
        """The fields the panel shows (a wait shows only its mode's)."""
        return list(self.fields)


def blank(value: Any) -> bool:
    return value in (None, "", [])

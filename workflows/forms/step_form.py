"""The builder's side of a step's form: the posted values merged over the saved config, and the form
drawn for the panel (the kind's own `StepForm`, workflows/steps/forms.py)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from integrations.json_input import NUL
from integrations.models import DataSource
from workflows.models import Step
from workflows.steps import StepKind, get_kind
from workflows.steps.forms import StepForm

# PostgreSQL cannot store a NUL character: a field that has one keeps its saved value and says why.
NUL_ERROR = "This contains a NUL character (\\0), which cannot be saved: remove it. The saved value is kept."


def posted_values(step: Step, data: QueryDict) -> tuple[dict[str, Any], dict[str, str]]:
    """{field: value} for the fields the POST carries (a box left empty counts, an empty secret box
    does not), and {field: message} for values that cannot be saved at all (kept as saved)."""
    form = get_kind(step.kind).form_class
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, field in form.base_fields.items():
        key = f"config-{name}"
        posted = [v for k in data if k == key or k.startswith(f"{key}-") for v in data.getlist(k)]
        if any(NUL in value for value in posted):
            errors[name] = NUL_ERROR
        elif not field.widget.value_omitted_from_data(data, {}, key):
            values[name] = field.widget.value_from_datadict(data, {}, key)
    return values, errors


def panel_form(step: Step, tenant_id: int, errors: dict[str, str]) -> StepForm:
    """The step's form bound to its saved config, showing `errors` (and its options, drawn now). A setting
    the config does not hold shows its field's initial value (what saving the form then stores)."""
    kind = get_kind(step.kind)
    initial = {name: f.initial for name, f in kind.form_class.base_fields.items() if f.initial is not None}
    form = kind.form({**initial, **(step.config or {})}, tenant_id)
    form.extra_errors = errors
    form.load_options()
    return form


def step_problems(step: Step) -> dict[str, str]:
    """{field: message} for a saved step: its form's errors, then what only its data source can tell."""
    kind = get_kind(step.kind)
    form = kind.form(step.config or {}, step.tenant_id)
    if not form.is_valid():
        return form.error_messages()
    return kind.live_problems(step)


def with_single_datasource(kind: StepKind, config: dict[str, Any], tenant_id: int) -> dict[str, Any]:
    """A new step of a kind with a data-source picker starts with the tenant's data source chosen when it
    has exactly one (and, for a schema picker, its first watched schema)."""
    names = set(kind.form_class.base_fields)
    if "datasource" not in names or config.get("datasource"):
        return config
    # only(): the connection URL is not needed, so it is not decrypted.
    sources = list(DataSource.objects.filter(tenant_id=tenant_id).only("pk", "schemas")[:2])
    if len(sources) != 1:
        return config
    config = {**config, "datasource": sources[0].pk}
    if "schema" in names and sources[0].schemas:
        config["schema"] = sources[0].schemas[0]
    return config

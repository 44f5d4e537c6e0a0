"""Fields whose value names a row of the tenant: a data source, an email sender, an email's topic or layout.

A `ReferenceField` is a `ModelChoiceField` whose queryset is the form's tenant's rows, so another
workspace's id is refused exactly like a missing one (the message tells nothing about other
workspaces). It is checked wherever a config is written or frozen: the builder's save (the other
workspace's id is not stored, not even as typed), `import_workflow` and publishing. The run would also
refuse it (runs/engine/context.py looks data sources up within the run's tenant).

Workflow files (workflows/files.py) write these fields by the row's name: `export_value` and
`import_value` are the field's own, so a new kind with a reference field is exported by name with no
change to files.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Model, QuerySet
from django.forms.models import ModelChoiceIterator

from consent.email_step import NO_LAYOUT
from consent.models import EmailLayout, Topic
from integrations.models import DataSource, Sender
from workflows.steps.widgets import Select

# The words database_trigger.on_publish uses for a data source deleted since.
NOT_HERE = "This data source does not exist (any more): choose another one."


class ReferenceField(forms.ModelChoiceField):  # type: ignore[type-arg]  # not subscriptable at runtime
    """An id of one of the tenant's rows (stored as the id; in files, as {"name": …})."""

    model: type[Model]
    not_here: str  # this tenant has no such row
    what: str  # in files' messages: "Name the data source, like {"name": "App DB"}"
    example: str
    add_it: str
    empty_label_text = "Choose…"
    widget = Select
    refuses_as_typed = True  # a refused id is never stored, not even in a draft

    def __init__(self, *, required: bool = False, **kwargs: Any):
        missing = kwargs.pop("missing", "This field is required.")
        super().__init__(
            queryset=self.model._default_manager.none(),
            required=required,
            empty_label=self.empty_label_text,
            error_messages={"required": missing, "invalid_choice": self.not_here},
            **kwargs,
        )
        self.tenant_bound = False

    def for_tenant(self, tenant_id: int) -> None:
        self.queryset = self.tenant_rows(tenant_id)
        self.tenant_bound = True

    def tenant_rows(self, tenant_id: int) -> QuerySet[Any]:
        return self.model._default_manager.filter(tenant_id=tenant_id).order_by("name")

    def names_nothing(self, value: Any) -> bool:
        return value in (None, "")

    def to_python(self, value: Any) -> Any:
        if self.names_nothing(value):
            return None
        pk = reference_id(value)
        if pk is None:
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        if not self.tenant_bound:
            return pk  # no tenant to look in (an engine-side check of the shape): the id as is
        row = super().to_python(pk)
        return row.pk if row is not None else None

    def validate(self, value: Any) -> None:
        forms.Field.validate(self, value)

    # ---- files: by name ----

    def names(self, tenant_id: int) -> dict[int, str]:
        return dict(self.model._default_manager.filter(tenant_id=tenant_id).values_list("pk", "name"))

    def export_value(self, value: Any, names: dict[int, str]) -> tuple[Any, str]:
        """(what a file holds for `value`, a problem): {"name": …}, or a message when the row is gone."""
        if self.names_nothing(value):
            return value, ""
        name = names.get(reference_id(value))  # type: ignore[arg-type]
        if name is None:
            return value, f"This step's {self.what} does not exist any more: choose another one."
        return {"name": name}, ""

    def import_value(self, value: Any, tenant_id: int) -> tuple[Any, str]:
        """(the id a file's {"name": …} stands for in this tenant, a problem in words)."""
        if self.names_nothing(value):
            return value, ""
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return value, (
                f'Name the {self.what}, like {{"name": "{self.example}"}}: ids differ between tenants and '
                "installations (export the workflow again to get names)."
            )
        matches = list(
            self.model._default_manager.filter(tenant_id=tenant_id, name=value["name"]).values_list(
                "pk", flat=True
            )
        )
        if not matches:
            return value, f"This tenant has no {self.what} named “{value['name']}”; {self.add_it}."
        if len(matches) > 1:
            return (
                value,
                f"This tenant has {len(matches)} {self.what}s named “{value['name']}”; rename all but one.",
            )
        return matches[0], ""


class DataSourceField(ReferenceField):
    model = DataSource
    not_here = NOT_HERE
    what, example, add_it = "data source", "App DB", "add it first (manage.py add_datasource)"

    def tenant_rows(self, tenant_id: int) -> QuerySet[Any]:
        # only(): the connection URL is not needed for a choice, so it is not decrypted.
        return super().tenant_rows(tenant_id).only("pk", "name", "schemas")


class SenderField(ReferenceField):
    model = Sender
    not_here = "This sender does not exist (any more): choose another one, or the default."
    what, example, add_it = "email sender", "Support", "add it first (Settings → Email)"

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} — {obj.from_address}"

    @property
    def empty_label(self) -> str:
        """What "the default" is: the tenant's default sender, or the platform's address (read when drawn)."""
        rows = self.queryset if self.tenant_bound else None
        default = rows.filter(is_default=True).first() if rows is not None else None
        shown = f"{default.name} — {default.from_address}" if default else settings.DEFAULT_FROM_EMAIL
        return f"Default: {shown}"

    @empty_label.setter
    def empty_label(self, value: str) -> None:
        pass  # always computed


class TopicField(ReferenceField):
    model = Topic
    not_here = "This topic does not exist (any more): choose another one."
    what, example, add_it = "topic", "Product news", "create it first"
    empty_label_text = "No topic (unsubscribe means from everything)"


class LayoutChoices(ModelChoiceIterator):
    """The default (empty), then "No layout", then the tenant's layouts."""

    def __iter__(self) -> Iterator[tuple[Any, str]]:
        rows = super().__iter__()
        yield next(rows)
        yield NO_LAYOUT, "No layout"
        yield from rows

    def __len__(self) -> int:
        return super().__len__() + 1


class LayoutField(ReferenceField):
    """A layout, or "none" (no layout at all); empty means the workspace's default layout."""

    model = EmailLayout
    not_here = "This layout does not exist (any more): choose another one."
    what, example, add_it = "email layout", "Brand", "create it first"
    empty_label_text = "The workspace's default layout"

    def names_nothing(self, value: Any) -> bool:
        return super().names_nothing(value) or value == NO_LAYOUT

    def to_python(self, value: Any) -> Any:
        return NO_LAYOUT if value == NO_LAYOUT else super().to_python(value)

    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} (default)" if obj.is_default else obj.name

    iterator = LayoutChoices


def reference_fields(form_class: type[forms.Form]) -> dict[str, ReferenceField]:
    """The fields of a kind's form whose value names a row of the tenant."""
    return {
        name: field for name, field in form_class.base_fields.items() if isinstance(field, ReferenceField)
    }


def reference_id(value: Any) -> int | None:
    """The row id a reference field holds (None for anything that is not one)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

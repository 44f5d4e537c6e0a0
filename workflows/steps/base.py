"""What every step kind shares: its name, config validation, how it runs one item, and the hooks through
which the builder, preview, test page, files, diff and engine ask a kind about itself (never its name)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from workflows.steps.context import StepContext
from workflows.steps.errors import ConfigError
from workflows.steps.forms import StepForm

if TYPE_CHECKING:
    from workflows.models import Step

__all__ = ["ConfigError", "PublishError", "StepKind", "StepPreview", "WatchedTable"]


class PublishError(Exception):
    """The draft cannot be published (a kind's `on_publish` raises it too). `step_errors` maps step id (or None for the tree) to field errors."""

    def __init__(self, step_errors: dict[int | None, dict[str, str]]):
        self.step_errors = step_errors
        super().__init__(f"{len(step_errors)} step(s) need fixing before publishing")


@dataclass(frozen=True)
class WatchedTable:
    """The table whose rows start runs: the data source's id as configured, schema and table ("" unset)."""

    datasource: Any
    schema: str
    table: str


@dataclass
class StepPreview:
    """One step applied to one item without side effects (the step preview page).

    `shows` names the template that draws it, runs/preview/<shows>.html: "message" (content, channel),
    "rows" (rows and total), "condition" (passed), "wait" (due), "branch" (path, decision) or "item"
    (content).
    """

    shows: str
    error: str = ""
    channel: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    passed: bool | None = None
    due: datetime | None = None
    # A branch: the path the item takes ("" for none) and the decision in words, with the reason.
    path: str = ""
    decision: str = ""


class StepKind:
    """One kind of step. Subclasses live one per module under workflows/steps/, listed in STEP_KINDS."""

    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    is_trigger: ClassVar[bool] = False
    # The kind's settings as a Django form; a valid form's cleaned data builds the kind's typed settings.
    form_class: ClassVar[type[StepForm]]
    # Children sit on labelled paths (see `paths`): the builder offers to add, remove and reorder them.
    has_paths: ClassVar[bool] = False
    # A trigger started by signed POSTs to the workflow's webhook URL: the builder shows the URL, the
    # secret and a curl example, and can send a test event.
    receives_webhooks: ClassVar[bool] = False
    # A trigger started by Supabase's Send Email hook (Standard Webhooks signature) at
    # /hooks/supabase/<workflow id>/: the builder shows that URL and the hook secret.
    receives_auth_email_hook: ClassVar[bool] = False
    # The step holds each item until `due_at`: a test run's "Skip waits" makes its executions due now.
    holds_items: ClassVar[bool] = False
    # The builder's panel shows what the step does with a sample item (`preview`, drawn by
    # templates/workflows/panel_preview/<kind>.html): a message rendered, a branch's decision.
    previews_in_panel: ClassVar[bool] = False
    # That sample shows blank and missing fields as ‹name›, so a message shows where they go; a step that
    # decides on the item's values (a branch) must see them as they are.
    preview_marks_blanks: ClassVar[bool] = True

    def form(self, config: Mapping[str, Any], tenant_id: int | None = None) -> StepForm:
        """The kind's form bound to a config (a file's, the API's, a saved step's)."""
        return self.form_class(config, tenant_id=tenant_id)

    def validate(self, config: Mapping[str, Any], tenant_id: int | None = None) -> dict[str, Any]:
        """Return the config to store, or raise ConfigError naming each bad field.

        With `tenant_id`, fields that name the tenant's rows (data sources, senders, topics, layouts)
        must name one of that tenant's; without, they must hold an id.
        """
        form = self.form(config, tenant_id)
        if not form.is_valid():
            raise ConfigError(form.error_messages())
        return form.stored_config()

    def settings(self, config: Mapping[str, Any]) -> Any:
        """A stored config as the kind's typed settings (what `execute` reads)."""
        return self.form_class.settings_class.from_json(config)

    def step_settings(self, ctx: StepContext) -> Any:
        """The running step's typed settings, read once per batch (the batch's items share them)."""
        key = ("settings", ctx.step.pk)
        cache = ctx.resources.cache
        if key not in cache:
            cache[key] = self.settings(ctx.step.config)
        return cache[key]

    def default_config(self) -> dict[str, Any]:
        return {}

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
        """Names available to the steps below this one (the builder's variable picker)."""
        return input_fields

    def live_problems(self, step: Step) -> dict[str, str]:
        """Problems only the step's data source can tell (SQL that does not describe), {field: message}.

        The builder asks as the person types, after `validate` passed for those fields.
        """
        return {}

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> Any:
        """Run the step on one item; return a list of items (see workflows/steps/results.py).

        `ctx` is the engine's context as a step sees it (workflows/steps/context.py: run, step, execution,
        now, per-batch resources). Raise integrations.failures.Failure(message, permanent=...) for errors.
        The default passes the item through, which is what a trigger does: its item is the event's payload.
        """
        return [item]

    def prepare_batch(self, ctx: StepContext, executions: list[Any]) -> None:
        """Called once before a batch's executions run one by one (`ctx.execution` is None here): a kind
        whose per-item work can be done for the whole batch in a few statements does it now and leaves
        the answers in `ctx.resources.cache` for `execute` (the digest's joins). The default does nothing.
        Each execution has `pk`, `run_id`, `step_id`, `item_key` and `input` (the item)."""

    def due_at(self, config: dict[str, Any], item: dict[str, Any], now: datetime) -> datetime:
        """When an execution of this step for `item` may run (a wait holds the item until then)."""
        return now

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        """What the step would do with `item`, without side effects. The default shows the item."""
        return StepPreview(shows="item", content=item)

    def summary(self, config: dict[str, Any]) -> str:
        """One short line saying what the step does with these settings, for the builder's nodes."""
        return ""

    def node_summary(self, step: Step) -> str:
        """What the step's node on the canvas says (its summary, unless the kind knows more from the step)."""
        return self.summary(step.config or {})

    def sample_item(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trigger's example item, typed by the person (test runs and previews start from it)."""
        return {}

    def watched_table(self, config: dict[str, Any]) -> WatchedTable | None:
        """A trigger's table whose rows start runs (test items and previews can be its live rows)."""
        return None

    def watched_rows(self, config: dict[str, Any]) -> list[WatchedTable]:
        """Tables whose row changes this step listens to (a wait until the row matches, a cancel from
        the row's state): publishing installs their capture (workflows/row_watches.py)."""
        return []

    def describe_trigger(self, config: dict[str, Any]) -> str:
        """What publishing installs for this trigger, in words (the publish dialog's diff)."""
        return self.label.lower()

    def paths(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """The labelled paths a step's children sit on, as (id, label) in order (a branch's paths).

        Empty for ordinary kinds, whose children are parallel branches that all get every item.
        Each child of a step with paths carries its path's id in `Step.path`.
        """
        return []

    def on_publish(self, step: Step, previous_step: Step | None) -> None:
        """Called when a version whose tree holds this step is published (install triggers here)."""

    def on_unpublish(self, step: Step) -> None:
        """Called when the version holding this step stops being the published one."""

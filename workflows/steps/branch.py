"""Branch: ordered paths, each with a condition, plus an optional "otherwise"; exactly one path runs per item.

Config:
    {"paths": [{"id": "p1", "label": "Finished onboarding", "match": "rule",
                "field": "onboarded", "operator": "is_true", "value": ""},
               {"id": "p2", "label": "Pro plan", "match": "expression", "expression": "item.plan == 'pro'"}],
     "otherwise": true, "otherwise_label": "Otherwise"}

The paths are tried in order and the first that matches takes the item; when none does, the
"otherwise" path takes it, or, without one, the item's path ends here (the execution reads
"filtered"). Each child step sits on one path: its `Step.path` holds the path's id (`otherwise` for
the otherwise path), and the engine hands the item only to the children on the chosen path. A path
whose condition cannot be evaluated (a field the item lacks, a broken expression) fails the item
with the path's name, and no path runs: running the next path instead could send the wrong message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms

from integrations.failures import Failure
from integrations.templating import TemplateError, evaluate, validate_expression
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.context import StepContext
from workflows.steps.fields import FlagField, TextField
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.item_variables import unknown_variables_warning
from workflows.steps.results import Routed
from workflows.steps.widgets import PathsWidget

OTHERWISE = "otherwise"
PATH_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_PATHS = 20

OPERATORS = (
    ("equals", "is"),
    ("not_equals", "is not"),
    ("contains", "contains"),
    ("greater_than", "is greater than"),
    ("less_than", "is less than"),
    ("is_empty", "is empty"),
    ("is_not_empty", "is not empty"),
    ("is_true", "is true"),
    ("is_false", "is false"),
)
# Operators that read no value, and those for which a missing field simply counts as empty.
NO_VALUE = {"is_empty", "is_not_empty", "is_true", "is_false"}
MATCHES = (("rule", "a field"), ("expression", "an expression"))


class ConditionError(Exception):
    """A path's condition could not be evaluated on this item; the message says why in plain words."""


@dataclass
class BranchSettings(StepSettings):
    paths: list[dict[str, Any]] = field(default_factory=list)
    otherwise: bool = False
    otherwise_label: str = "Otherwise"


class PathsField(forms.Field):
    """A branch's ordered paths (rows of settings), checked row by row; the first problem names its path."""

    widget = PathsWidget

    def __init__(self, **kwargs: Any):
        super().__init__(required=False, **kwargs)
        self.operators = OPERATORS

    def variables_warning(self, value: Any, known: list[str]) -> str:
        """The first path that reads a field the item lacks here, named."""
        if not known or not isinstance(value, list):
            return ""
        for index, row in enumerate(value):
            if not isinstance(row, dict):
                continue
            label = row.get("label") or f"Path {index + 1}"
            if row.get("match") == "expression":
                found = unknown_variables_warning(row.get("expression") or "", known, expression=True)
            else:
                name = str(row.get("field") or "").split(".")[0]
                found = f"Unknown variable item.{name}." if name and name not in known else ""
            if found:
                return f"Path “{label}”: {found}"
        return ""

    def clean(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise forms.ValidationError("Add at least one path with a condition.")
        if len(value) > MAX_PATHS:
            raise forms.ValidationError(f"A branch can have at most {MAX_PATHS} paths.")
        cleaned_paths, seen, first_problem = [], set(), ""
        for index, path in enumerate(value):
            cleaned, problem = _clean_path(path, index)
            first_problem = first_problem or problem
            if not first_problem and (cleaned["id"] in seen or cleaned["id"] == OTHERWISE):
                first_problem = f"Path {index + 1} needs an id of its own."
            seen.add(cleaned["id"])
            cleaned_paths.append(cleaned)
        if first_problem:
            raise forms.ValidationError(first_problem)
        return cleaned_paths


class BranchForm(StepForm):
    settings_class = BranchSettings

    paths = PathsField(label="Paths, tried in order")
    otherwise = FlagField(label="Add an “otherwise” path for items no path matches")
    otherwise_label = TextField(label="Name of the otherwise path", initial="Otherwise", required=False)

    def clean_otherwise_label(self) -> str:
        return (self.cleaned_data["otherwise_label"] or "Otherwise")[:80]


class Branch(StepKind):
    kind = "branch"
    label = "Branch"
    description = "Sends each item down exactly one path: the first whose condition holds, else “otherwise”."
    has_paths = True
    form_class = BranchForm
    previews_in_panel = True
    preview_marks_blanks = False

    def default_config(self) -> dict[str, Any]:
        return {
            "paths": [{"id": "p1", "label": "Path 1", "match": "rule", "field": "", "operator": "is_true"}],
            "otherwise": True,
            "otherwise_label": "Otherwise",
        }

    def paths(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        found = [
            (str(p.get("id")), str(p.get("label") or f"Path {i + 1}"))
            for i, p in enumerate(config.get("paths") or [])
            if isinstance(p, dict) and p.get("id")
        ]
        if config.get("otherwise"):
            found.append((OTHERWISE, config.get("otherwise_label") or "Otherwise"))
        return found

    def summary(self, config: dict[str, Any]) -> str:
        return " · ".join(label for _id, label in self.paths(config))

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> Routed | list[dict[str, Any]]:
        try:
            chosen = choose(self.step_settings(ctx), item, ctx.run_context)
        except ConditionError as exc:
            raise Failure(str(exc), permanent=True) from exc
        if chosen.path_id is None:
            return Routed("", [], {"path": None, "reason": chosen.why})
        return Routed(chosen.path_id, [item], {"path": chosen.label, "why": chosen.why})

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        """Which path the item takes and why: "takes Not onboarded yet: onboarded_now is empty"."""
        try:
            chosen = choose(self.step_settings(ctx), item, ctx.run_context)
        except ConditionError as exc:
            return StepPreview(shows="branch", error=f"No path can be chosen: {exc}")
        if chosen.path_id is None:
            return StepPreview(shows="branch", decision=f"takes no path: {chosen.why}")
        return StepPreview(shows="branch", decision=f"takes {chosen.label}: {chosen.why}", path=chosen.label)


@dataclass(frozen=True)
class Choice:
    """The path an item takes (None: no path, its path ends here), its label, and why, in words."""

    path_id: str | None
    label: str
    why: str


def choose(settings: BranchSettings, item: dict[str, Any], run: dict[str, Any]) -> Choice:
    """The first path whose condition holds, else "otherwise", else none; raises ConditionError (naming
    the path) when a condition cannot be evaluated on this item."""
    missed = []
    for index, path in enumerate(settings.paths):
        label = path.get("label") or f"Path {index + 1}"
        try:
            matched = matches(path, item, run)
        except ConditionError as exc:
            raise ConditionError(f"Branch, path “{label}”: {exc}") from exc
        if matched:
            return Choice(path["id"], label, f"{describe(path)}{' holds' if _is_expression(path) else ''}")
        missed.append(f"not {describe(path)}" if _is_expression(path) else _negated(path))
    why = "; ".join(missed) or "no path has a condition"
    if settings.otherwise:
        return Choice(OTHERWISE, settings.otherwise_label or "Otherwise", why)
    return Choice(None, "", f"no path matched ({why}), and there is no “otherwise”")


def _is_expression(path: dict[str, Any]) -> bool:
    return path.get("match") == "expression"


NEGATED = {
    "equals": "is not",
    "not_equals": "is",
    "contains": "does not contain",
    "greater_than": "is not greater than",
    "less_than": "is not less than",
    "is_empty": "is not empty",
    "is_not_empty": "is empty",
    "is_true": "is not true",
    "is_false": "is not false",
}


def _negated(path: dict[str, Any]) -> str:
    """Why a rule did not take the item: "finished_onboarding is not true"."""
    operator = str(path.get("operator") or "")
    value = "" if operator in NO_VALUE else f" {path.get('value', '')}"
    return f"{path.get('field') or '?'} {NEGATED.get(operator, 'does not match')}{value}"


def describe(path: dict[str, Any]) -> str:
    """A path's condition in words: "onboarded is true", "item.plan == 'pro'"."""
    if path.get("match") == "expression":
        return path.get("expression") or ""
    operator = str(path.get("operator") or "")
    words = dict(OPERATORS).get(operator, operator)
    value = "" if path.get("operator") in NO_VALUE else f" {path.get('value', '')}"
    return f"{path.get('field') or '?'} {words}{value}"


def matches(path: dict[str, Any], item: dict[str, Any], run: dict[str, Any]) -> bool:
    if path.get("match") == "expression":
        try:
            return bool(evaluate(path["expression"], {"item": item, "run": run}))
        except TemplateError as exc:
            raise ConditionError(str(exc)) from exc
    operator = str(path.get("operator") or "")
    present, value = _lookup(item, path.get("field") or "")
    if not present and operator not in ("is_empty", "is_not_empty"):
        fields = ", ".join(sorted(item)) or "none"
        raise ConditionError(f"the item has no field “{path.get('field')}” (its fields: {fields}).")
    return _compare(operator, value, path.get("value", ""))


def _lookup(item: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """`plan` or `profile.plan`: whether the field exists, and its value."""
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _compare(operator: str, actual: Any, wanted: str) -> bool:
    if operator == "is_empty":
        return actual in (None, "", [], {})
    if operator == "is_not_empty":
        return actual not in (None, "", [], {})
    if operator == "is_true":
        return _truthy(actual)
    if operator == "is_false":
        return not _truthy(actual)
    if operator in ("equals", "not_equals"):
        same = _same(actual, wanted)
        return same if operator == "equals" else not same
    if operator == "contains":
        if isinstance(actual, list):
            return any(_same(element, wanted) for element in actual)
        return wanted.lower() in ("" if actual is None else str(actual)).lower()
    if actual is None:
        return False
    left, right = _ordered(actual, wanted)
    return bool(left > right if operator == "greater_than" else left < right)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "off", "null", "none")
    return bool(value)


def _same(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return actual == _truthy(wanted)
    if isinstance(actual, int | float):
        try:
            return float(actual) == float(wanted)
        except ValueError:
            return False
    if actual is None:
        return wanted.strip().lower() in ("", "null", "none")
    return str(actual) == wanted


def _ordered(actual: Any, wanted: str) -> tuple[Any, Any]:
    """Numbers compare as numbers and ISO times as times; anything else is an error in words."""
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        try:
            return float(actual), float(wanted)
        except ValueError:
            raise ConditionError(
                f"“{wanted}” is not a number, so it cannot be compared with {actual}."
            ) from None
    try:
        return _time(str(actual)), _time(wanted)
    except ValueError:
        pass
    try:
        return float(str(actual)), float(wanted)
    except ValueError:
        raise ConditionError(
            f"{actual!r} and {wanted!r} are neither numbers nor dates, so neither is greater."
        ) from None


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.now().astimezone().tzinfo)


def _clean_path(path: Any, index: int) -> tuple[dict[str, Any], str]:
    """A path's cleaned settings, and the first problem found (in words, naming the path) or ""."""
    if not isinstance(path, dict):
        return {
            "id": f"#{index}",
            "label": f"Path {index + 1}",
        }, f"Path {index + 1} is not a set of settings."
    label = str(path.get("label") or "").strip()[:80] or f"Path {index + 1}"
    cleaned: dict[str, Any] = {"id": str(path.get("id") or "").strip()[:40], "label": label}
    name = f"Path “{label}”"
    if not cleaned["id"] or not PATH_ID.fullmatch(cleaned["id"]):
        return cleaned, f"{name} needs an id of letters, digits, - or _."
    match = path.get("match") or "rule"
    cleaned["match"] = match
    if match == "expression":
        expression = str(path.get("expression") or "").strip()
        cleaned["expression"] = expression
        if not expression:
            return cleaned, f"{name}: write a condition, like item.plan == 'pro'."
        problem = validate_expression(expression)
        if problem:
            return cleaned, f"{name}: {problem.message}"
        return cleaned, ""
    if match != "rule":
        return cleaned, f"{name}: choose “a field” or “an expression”."
    field = str(path.get("field") or "").strip()
    operator = path.get("operator") or "equals"
    value = path.get("value")
    cleaned.update(field=field, operator=operator, value="" if value is None else str(value))
    if not field:
        return cleaned, f"{name}: choose the field to test, like onboarded."
    if operator not in dict(OPERATORS):
        return cleaned, f"{name}: choose how to compare ({', '.join(w for _o, w in OPERATORS)})."
    return cleaned, ""

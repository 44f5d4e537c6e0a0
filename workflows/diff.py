"""What publishing a draft changes against the published version, step by step (matched by Step.key)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.models import Step, WorkflowVersion
from workflows.steps import ConfigError, get_kind


@dataclass
class SettingChange:
    """One setting, old → new, as the builder labels it ("Subject", not `subject`)."""

    label: str
    old: str
    new: str


@dataclass
class StepChange:
    step: Step
    what: list[str] = field(default_factory=list)  # for changed steps: "name", "settings: sql", "moved"
    settings: list[SettingChange] = field(default_factory=list)  # each changed setting's old and new value


@dataclass
class VersionDiff:
    added: list[Step] = field(default_factory=list)
    removed: list[Step] = field(default_factory=list)
    changed: list[StepChange] = field(default_factory=list)
    install: str = ""  # the trigger publishing installs or updates, in words
    remove: str = ""  # the trigger publishing removes, in words

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_versions(published: WorkflowVersion | None, draft: WorkflowVersion) -> VersionDiff:
    old = {s.key: s for s in published.steps.all()} if published else {}
    new = {s.key: s for s in draft.steps.all()}
    old_parent = _parent_keys(old)
    new_parent = _parent_keys(new)
    result = VersionDiff(
        added=[s for key, s in new.items() if key not in old],
        removed=[s for key, s in old.items() if key not in new],
    )
    for key, step in new.items():
        before = old.get(key)
        if before is None:
            continue
        what = []
        if before.kind != step.kind:
            what.append("kind")
        if before.name != step.name:
            what.append("name")
        changed = sorted(
            k for k in set(before.config) | set(step.config) if before.config.get(k) != step.config.get(k)
        )
        if changed:
            what.append("settings: " + ", ".join(changed))
        if old_parent[key] != new_parent[key] or before.position != step.position or before.path != step.path:
            what.append("moved")
        if what:
            settings = [
                setting_change(step, name, before.config.get(name), step.config.get(name)) for name in changed
            ]
            if before.name != step.name:
                settings.insert(0, SettingChange("Name", before.name or "—", step.name or "—"))
            result.changed.append(StepChange(step, what, settings))
    _describe_triggers(result, _root(old), _root(new))
    return result


def _parent_keys(steps: dict) -> dict:
    by_id = {s.id: s for s in steps.values()}
    return {key: (by_id[s.parent_id].key if s.parent_id in by_id else None) for key, s in steps.items()}


def _root(steps: dict) -> Step | None:
    roots = [s for s in steps.values() if s.parent_id is None]
    return roots[0] if roots else None


def describe_trigger(step: Step) -> str:
    try:
        return get_kind(step.kind).describe_trigger(step.config)
    except ConfigError:
        return step.kind.lower()


def _describe_triggers(result: VersionDiff, old: Step | None, new: Step | None) -> None:
    same = old is not None and new is not None and old.kind == new.kind and old.config == new.config
    if same:
        return
    if new is not None:
        result.install = describe_trigger(new)
    if old is not None and (new is None or describe_trigger(old) != describe_trigger(new)):
        result.remove = describe_trigger(old)


MAX_SHOWN = 120


def setting_change(step: Step, name: str, old, new) -> SettingChange:
    """A setting's label from the step's kind, and both values as short text."""
    try:
        labels = {
            name: str(field.label) for name, field in get_kind(step.kind).form_class.base_fields.items()
        }
    except ConfigError:
        labels = {}
    return SettingChange(labels.get(name, name.replace("_", " ").capitalize()), _shown(old), _shown(new))


def _shown(value) -> str:
    """A value as one short line: empty as "—", lists and objects as compact JSON, long text cut."""
    import json

    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"

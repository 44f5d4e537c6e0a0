"""The apps' layers hold for the schema too: no foreign key points from an app to one above it.

The order is the import contract's (`[tool.importlinter]` in pyproject.toml, top layer first), so the
schema and the imports cannot drift apart: a model in `integrations` that points at a workflow would
make its migrations depend upward, whatever its module imports.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from django.apps import apps

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def layer_order() -> list[str]:
    """The domain apps, top layer first, as the layers contract lists them."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers" and "containers" not in c]
    return [layer.split(".")[-1] for layer in contract["layers"]]


def upward_relations(order: list[str]) -> list[str]:
    rank = {app: position for position, app in enumerate(order)}  # 0 is the top layer
    found = []
    for model in apps.get_models(include_auto_created=True):
        source = model._meta.app_label
        for field in model._meta.get_fields(include_hidden=True):
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            target = field.related_model._meta.app_label
            if source in rank and target in rank and rank[target] < rank[source]:
                found.append(
                    f"{model.__name__}.{field.name} ({source}) -> {field.related_model.__name__} ({target})"
                )
    return sorted(found)


def test_every_domain_app_is_a_layer():
    order = layer_order()
    assert {"tenants", "integrations", "consent", "workflows", "runs"} <= set(order)


def test_no_foreign_key_points_to_a_higher_app():
    assert upward_relations(layer_order()) == []


def test_the_check_sees_an_upward_key():
    """The check can fail: with the layers reversed, the keys that point down (runs -> workflows) point up."""
    reversed_order = list(reversed(layer_order()))
    assert "Run.workflow (runs) -> Workflow (workflows)" in upward_relations(reversed_order)

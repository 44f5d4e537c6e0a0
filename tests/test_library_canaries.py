"""Canaries for the library internals Rowbell still relies on: each fails when an upgrade changes the
internal, so the upgrade is noticed in the suite instead of silently losing a safety check.

- Jinja2's `CodeGenerator.visit_Concat` (integrations/templating.py `_CappedCodeGenerator`): our copy
  weighs the operands of `~` before they are joined; it must stay Jinja's code plus that one call.
- Jinja2's `_PassArg` (integrations/template_caps.py `capped_filter`): tells which filters receive the
  context, eval context or environment first; the wrapper must keep that marker.
"""

from __future__ import annotations

import inspect
import textwrap

import jinja2.filters
import pytest
from jinja2 import pass_context, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator
from jinja2.utils import _PassArg

from integrations import templating
from integrations.templating import CappedSandbox, TemplateError, _CappedCodeGenerator


def body(function) -> str:
    """A method's code without its decorators and `def` line."""
    lines = inspect.getsource(function).splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
    return textwrap.dedent("\n".join(lines[start + 1 :]))


def test_our_visit_concat_is_jinjas_plus_the_weighing_call():
    # If this fails, Jinja2 changed how it compiles `~`: port the change into _CappedCodeGenerator.
    jinjas = body(CodeGenerator.visit_Concat)
    expected = jinjas.replace('f"{func_name}(("', 'f"{func_name}(environment.checked_parts(("').replace(
        'self.write("))")', 'self.write(")))")'
    )
    assert expected != jinjas, "Jinja2's visit_Concat no longer has the shape our override wraps"
    assert body(_CappedCodeGenerator.visit_Concat) == expected


def test_concatenation_compiles_through_the_weighing_call_and_is_capped(settings):
    code = CappedSandbox().compile("{% set x = a ~ b %}{{ x | length }}", raw=True)
    assert "environment.checked_parts((" in code  # Jinja still calls visit_Concat for `~`
    settings.TEMPLATE_MAX_OUTPUT = 1000
    assert templating.render("{% set x = a ~ b %}{{ x | length }}", {"a": "a" * 400, "b": "b" * 400}) == "800"
    with pytest.raises(TemplateError):  # only `~` builds the big value: the output is four characters
        templating.render("{% set x = a ~ b %}{{ x | length }}", {"a": "a" * 600, "b": "b" * 600})


def test_pass_arg_still_marks_what_a_filter_receives_first():
    # If this fails, Jinja2 changed how it marks filters: capped_filter would pass the context as data.
    def plain(value):
        return value

    assert _PassArg.from_obj(plain) is None
    for decorator, expected in (
        (pass_context, _PassArg.context),
        (pass_eval_context, _PassArg.eval_context),
        (pass_environment, _PassArg.environment),
    ):
        marked = decorator(lambda value: value)
        assert _PassArg.from_obj(marked) is expected
        assert "jinja_pass_arg" in marked.__dict__  # what capped_filter copies onto its wrapper


def test_every_capped_filter_receives_what_jinjas_own_receives():
    capped = CappedSandbox().filters
    passing = [name for name, func in jinja2.filters.FILTERS.items() if _PassArg.from_obj(func)]
    assert len(passing) > 10  # join, map, select, attr, sum...: the check means something
    for name, func in jinja2.filters.FILTERS.items():
        assert _PassArg.from_obj(capped[name]) is _PassArg.from_obj(func), name
    assert templating.render(
        "{{ users | map(attribute='name') | join(', ') }}", {"users": [{"name": "Ada"}]}
    ) == ("Ada")

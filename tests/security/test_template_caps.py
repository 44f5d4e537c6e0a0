"""The output cap holds for every way a template can build a string, not only for what it outputs.

Each template below would build far more than TEMPLATE_MAX_OUTPUT (most of them in one C-level call the
time cap cannot interrupt, the reported one 2^29 characters in 2 s); each must stop with a TemplateError
that names the size limit, not with the time cap, a MemoryError or a hang.
"""

from __future__ import annotations

import pytest

from integrations.templating import TemplateError, render

BIG = '{% set big = "x" * 900 %}'  # just under the test's 1,000-character cap
LIST_OF_BIG = BIG + "{% set many = [big] * 1000 %}"  # a thousand references, cheap until turned into text

ATTACKS = {
    "~ in a namespace loop (the report)": '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "+ on text in a namespace loop": '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
    "{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "* on text": "{{ 'a' * 10**8 }}",
    "* on a list": "{{ ([1] * 10**8)|length }}",
    "+ on lists in a loop": "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
    "list.extend doubling": "{% set l = [1] %}{% for i in range(60) %}{% set _ = l.extend(l) %}{% endfor %}",
    "list.append of big text, then output": LIST_OF_BIG.replace("[big] * 1000", "[]")
    + "{% for i in range(1000) %}{% set _ = many.append(big) %}{% endfor %}{{ many }}",
    "join filter": LIST_OF_BIG + "{{ many|join }}",
    "join filter with a long separator": "{{ range(1000)|join(big) }}".replace("{{", BIG + "{{"),
    "str.join": LIST_OF_BIG + "{{ ''.join(many) }}",
    "format filter width": "{{ '%999999999s'|format(1) }}",
    "% width": "{{ '%999999999d' % 1 }}",
    "% width from *": "{{ '%*s' % (999999999, 1) }}",
    "% precision": "{{ '%.999999999f' % 1.5 }}",
    "% repeating one argument": BIG + "{{ '%(a)s%(a)s' % {'a': big} }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "str.format nested width": "{{ '{:>{}}'.format(1, 999999999) }}",
    "str.format repeating one argument": BIG + "{{ '{0}{0}{0}'.format(big) }}",
    "str.format_map": BIG + "{{ '{a}{a}'.format_map({'a': big}) }}",
    "replace filter": BIG + "{{ big|replace('x', 'yyy') }}",
    "str.replace on the empty string": BIG + "{{ big.replace('', 'yy') }}",
    "center filter": "{{ 'a'|center(999999999) }}",
    "str.center": "{{ 'a'.center(999999999) }}",
    "str.ljust": "{{ 'a'.ljust(999999999) }}",
    "str.zfill": "{{ '1'.zfill(999999999) }}",
    "str.expandtabs": "{{ ('\t' * 100).expandtabs(999999) }}",
    "str.translate": BIG + "{{ big.translate({120: big}) }}",
    "indent filter": "{{ ('\n' * 900)|indent(100) }}",
    "indent filter with a text prefix": BIG + "{{ ('\n' * 100)|indent(big) }}",
    "wordwrap filter": "{{ ('a ' * 400)|wordwrap(1, wrapstring='xxxxxxxxxx') }}",
    "urlize with a long target": BIG + "{{ ('http://a.example ' * 40)|urlize(target=big) }}",
    "tojson": LIST_OF_BIG + "{{ many|tojson }}",
    "string filter": LIST_OF_BIG + "{{ many|string }}",
    "pprint": LIST_OF_BIG + "{{ many|pprint }}",
    "map to string, then join": LIST_OF_BIG + "{{ [many]|map('string')|join }}",
    "sum of lists": "{% set l = [[1] * 900] * 1000 %}{{ l|sum(start=[])|length }}",
    "batch with a fill value": "{{ [1]|batch(999999999, 'x')|list|length }}",
    "slice into many": "{{ [1]|slice(999999999)|list|length }}",
    "outputting a list": LIST_OF_BIG + "{{ many }}",
    "outputting a namespace": LIST_OF_BIG + "{% set ns = namespace(m=many) %}{{ ns }}",
    "dict in a list": BIG + "{% set l = [{'a': big}] * 1000 %}{{ l|tojson }}",
    "{% set %} block in a loop": '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
    "{% set b %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = b %}{% endfor %}",
    "filter block": '{% set ns = namespace(s="a") %}{% for i in range(40) %}'
    "{% set b %}{% filter upper %}{{ ns.s }}{{ ns.s }}{% endfilter %}{% endset %}{% set ns.s = b %}{% endfor %}",
    "macro output doubling": '{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s="a") %}'
    "{% for i in range(40) %}{% set ns.s = twice(ns.s) %}{% endfor %}",
    "constant filters joined with ~": "{{ ('a'|center(900)) ~ ('a'|center(900)) }}",
}


@pytest.fixture(autouse=True)
def small_cap(settings):
    settings.TEMPLATE_MAX_OUTPUT = 1000
    settings.TEMPLATE_MAX_SECONDS = 30  # generous: each case must stop on size, never on time


@pytest.mark.parametrize("html", [False, True], ids=["text", "html"])
@pytest.mark.parametrize("template", ATTACKS.values(), ids=ATTACKS.keys())
def test_every_way_of_building_a_string_is_capped(template, html):
    with pytest.raises(TemplateError, match=r"over the limit of 1,000 characters|too large"):
        render(template, {}, html=html)


@pytest.mark.parametrize(
    "template",
    [
        "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
        "{{ 7 ** 100000 }}",
    ],
)
def test_integers_cannot_grow_without_bound(template):
    with pytest.raises(TemplateError, match="too large"):
        render(template, {})


def test_lipsum_is_bounded():
    with pytest.raises(TemplateError, match="at most 100 paragraphs"):
        render("{{ lipsum(100000) }}", {})


def test_work_that_builds_nothing_big_is_stopped_by_the_time_cap(settings):
    settings.TEMPLATE_MAX_SECONDS = 0.3
    doubling = "{% macro m(n) %}{% if n %}{{ m(n-1) }}{{ m(n-1) }}{% endif %}{% endmacro %}{{ m(40) }}"
    with pytest.raises(TemplateError, match=r"longer than 0\.3 s"):
        render(doubling, {})


def test_ordinary_templates_still_render():
    template = (
        "{{ 'Hi %s' % item.name }} {{ 'a,b'|replace(',', ';') }} {{ item.tags|join(', ') }} "
        "{{ '{} {}'.format(1, 2) }} {{ item|tojson }} {% set l = [] %}{% for i in range(3) %}"
        "{% set _ = l.append(i) %}{% endfor %}{{ l }} {{ 'x'|center(5) }}|{{ 2 ** 10 }} {{ 'ab' * 2 }} "
        "{{ item.name ~ '!' }} {{ ('%-6s|' % 'ab') }}{{ 'ab'.ljust(4) }}|"
    )
    out = render(template, {"item": {"name": "Ada", "tags": ["a", "b"]}})
    assert out == (
        'Hi Ada a;b a, b 1 2 {"name": "Ada", "tags": ["a", "b"]} [0, 1, 2]   x  |1024 abab Ada! ab    |ab  |'
    )


def test_a_value_just_under_the_cap_renders():
    assert len(render("{{ 'x' * 999 }}", {})) == 999
    assert len(render("{% set a = 'x' * 500 %}{{ a ~ a }}", {})) == 1000

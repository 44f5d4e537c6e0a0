"""Size checks for user templates: every way a template can build a string is bounded BEFORE it builds it.

Counting output as it streams is not enough: one operation can build a huge value inside the render
(`ns.s ~ ns.s` doubled in a loop reaches 2^29 characters in a couple of seconds, `"{:>999999999}".format(1)`
or `[big] * 10**6 | join` in one C call that no watchdog can interrupt). So the sandbox (templating.py)
asks here first, for:

- operators: `~` (concatenation), `+` and `*` on text and lists, `%` formatting, `*`/`**` on integers;
- every filter (join, format, center, indent, wordwrap, replace, urlize, batch, slice, tojson, string...),
  and every value a filter or a method returns;
- methods called on text and lists (`.join`, `.format`, `.replace`, `.center`, `.extend`...);
- every `{{ value }}` output and every captured block (`{% set %}...{% endset %}`, macros, filter blocks).

The unit is the value's weight: characters of text plus items of containers, walked recursively, so a
list holding the same long string a million times weighs what its text would. Walking stops as soon as
the limit is passed, so a check costs at most the limit. Lists themselves are bounded by length.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable
from typing import Any

from jinja2.runtime import Namespace
from jinja2.utils import _PassArg

# Integers: `ns.n = ns.n * ns.n` squares into millions of digits in a few steps, each one C call.
MAX_INTEGER_DIGITS = 1000
MAX_INTEGER_BITS = int(MAX_INTEGER_DIGITS * math.log2(10)) + 1
# A `%` conversion: flags, width, precision (`*` takes them from the arguments).
PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
NUMBER = re.compile(r"\d+")


class CapExceeded(Exception):
    """A template tried to build a value over TEMPLATE_MAX_OUTPUT; the message says what to change."""


def too_big(what: str, limit: int) -> CapExceeded:
    return CapExceeded(f"This template builds {what}, over the limit of {limit:,} characters. Build less.")


def weight(value: Any, limit: int) -> int:
    """Characters of text plus items of containers in `value`, counted until more than `limit`."""
    if value.__class__ is str:  # the common case, first
        return len(value)
    if value is None or value.__class__ in (bool, float):
        return 1
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Namespace):  # its text shows its attributes
            stack.append(dict(object.__getattribute__(item, "_Namespace__attrs")))
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 1
        if total > limit:
            return total
    return total


def check_weight(value: Any, limit: int, what: str = "a value") -> Any:
    if weight(value, limit) > limit:
        raise too_big(what, limit)
    return value


def check_result(value: Any, limit: int) -> Any:
    """A value just built: text no longer than the limit, containers with no more items (cheap: len only)."""
    if isinstance(value, str | bytes | list | tuple | dict | set) and len(value) > limit:
        raise too_big("a value", limit)
    return value


def check_parts(parts: tuple, limit: int) -> tuple:
    """The operands of `~`, before they are turned into text and joined."""
    total = 0
    for part in parts:
        total += weight(part, limit - total)
        if total > limit:
            raise too_big("a text (with ~)", limit)
    return parts


def capped_concat(max_output: Callable[[], int]) -> Callable[[Iterable[str]], str]:
    """Jinja's `environment.concat` (captured blocks, macros, filter blocks) that stops at the limit."""

    def concat(parts: Iterable[str]) -> str:
        limit = max_output()
        kept: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > limit:
                raise too_big("a block of text", limit)
            kept.append(part)
        return "".join(kept)

    return concat


# --- Operators ------------------------------------------------------------------------------------------


def check_binop(operator: str, left: Any, right: Any, limit: int) -> None:
    if operator == "*":
        _check_repeat(left, right, limit)
    elif operator == "+":
        if _is_sequence(left) and _is_sequence(right) and len(left) + len(right) > limit:
            raise too_big("a value (with +)", limit)
    elif operator == "**" and _is_power_too_large(left, right):
        raise CapExceeded("This template computes a number that is too large.")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right, limit)


def _is_power_too_large(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0):
        return False
    return exponent * math.log10(abs(base)) > MAX_INTEGER_DIGITS


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _check_repeat(left: Any, right: Any, limit: int) -> None:
    if isinstance(left, int) and isinstance(right, int) and not isinstance(left, bool):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise CapExceeded("This template computes a number that is too large.")
        return
    for seq, times in ((left, right), (right, left)):
        if _is_sequence(seq) and isinstance(times, int) and len(seq) * times > limit:
            raise too_big(f"a value of {len(seq) * times:,} items (with *)", limit)


def _check_width(number: Any, limit: int) -> None:
    if isinstance(number, int) and number > limit:
        raise too_big(f"a field {number:,} characters wide", limit)


def check_percent_format(template: str, args: Any, limit: int) -> None:
    """`"%10s" % x`: widths and precisions in range, and the fields' text within the limit."""
    fields = 0
    takes_star = False
    for match in PERCENT_SPEC.finditer(template):
        fields += 1
        for number in match.groups():
            if number == "*":
                takes_star = True
            elif number:
                _check_width(int(number), limit)
    values = args if isinstance(args, tuple) else (args,)
    if takes_star:
        for value in values:
            _check_width(value, limit)
    if len(template) + fields * weight(args, limit) > limit:
        raise too_big("a text (with %)", limit)


def check_str_format(template: str, args: tuple, kwargs: dict, limit: int) -> None:
    """`"{:>10}".format(x)`: widths in range (nested `{}` widths from the arguments), fields within the limit."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return  # the call raises the format error itself
    fields = 0
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        fields += 1
        for number in NUMBER.findall(spec or ""):
            _check_width(int(number), limit)
        if spec and "{" in spec:
            for value in (*args, *kwargs.values()):
                _check_width(value, limit)
    if len(template) + fields * weight((args, kwargs), limit) > limit:
        raise too_big("a text (with format)", limit)


# --- Methods called from templates ----------------------------------------------------------------------


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def check_text_method(text: str, name: str, args: tuple, kwargs: dict, limit: int) -> tuple:
    """Checks a method of a text before it runs; returns the arguments to call it with."""
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(_arg(args, kwargs, 0, "width"), limit)
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int) and len(text) + text.count("\t") * tabsize > limit:
            raise too_big("a text (with expandtabs)", limit)
    elif name == "replace":
        if _replaced_size(text, *args[:3]) > limit:
            raise too_big("a text (with replace)", limit)
    elif name == "join" and args:
        items = list(args[0])
        if weight(items, limit) + len(text) * len(items) > limit:
            raise too_big("a text (with join)", limit)
        return (items, *args[1:])
    elif name in ("format", "format_map"):
        mapping = args[0] if name == "format_map" and args else {}
        check_str_format(text, args if name == "format" else (), kwargs or mapping, limit)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if len(text) * max(longest, 1) > limit:
            raise too_big("a text (with translate)", limit)
    return args


def check_list_method(items: list, name: str, args: tuple, limit: int) -> tuple:
    if name == "extend" and args:
        added = list(args[0])
        if len(items) + len(added) > limit:
            raise too_big("a list", limit)
        return (added, *args[1:])
    if name in ("append", "insert") and len(items) + 1 > limit:
        raise too_big("a list", limit)
    return args


def check_call(target: Any, args: tuple, kwargs: dict, limit: int) -> tuple:
    """Before a method runs: the arguments to call it with (an iterable argument is read once, here)."""
    target = getattr(target, "__wrapped__", target)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if isinstance(owner, str):
        return check_text_method(owner, name, args, kwargs, limit)
    if isinstance(owner, list):
        return check_list_method(owner, name, args, limit)
    return args


# --- Filters --------------------------------------------------------------------------------------------


def _join(limit, value, d="", attribute=None):
    items = list(value)
    if weight(items, limit) + len(str(d)) * len(items) > limit:
        raise too_big("a text (with join)", limit)
    return (items, d, attribute)


def _center(limit, value, width=80):
    _check_width(width, limit)


def _indent(limit, s, width=4, *rest, **kwargs):
    prefix = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if len(str(s)) + (str(s).count("\n") + 1) * prefix > limit:
        raise too_big("a text (with indent)", limit)


def _wordwrap(limit, s, width=79, break_long_words=True, wrapstring=None, *rest, **kwargs):
    text = str(s)
    lines = (
        text.count(" ") + text.count("\n") + len(text) // max(width if isinstance(width, int) else 1, 1) + 1
    )
    if len(text) + lines * len(wrapstring or "\n") > limit:
        raise too_big("a text (with wordwrap)", limit)


def _replace(limit, s, old, new, count=None):
    if _replaced_size(str(s), old, new, -1 if count is None else count) > limit:
        raise too_big("a text (with replace)", limit)


def _format(limit, value, *args, **kwargs):
    if isinstance(value, str):
        if args and kwargs:
            return  # the filter refuses both itself
        check_percent_format(value, kwargs or tuple(args), limit)


def _urlize(limit, value, trim_url_limit=None, nofollow=False, target=None, rel=None, extra_schemes=None):
    text = str(value)
    extra = len(target or "") + len(rel or "") + 60
    if 2 * len(text) + (text.count(" ") + text.count("\n") + 1) * extra > limit:
        raise too_big("a text (with urlize)", limit)


def _batch(limit, value, linecount, fill_with=None):
    _check_width(linecount, limit)


def _slice(limit, value, slices, fill_with=None):
    _check_width(slices, limit)


# Filters whose argument is checked in a filter-specific way; the others get their input's weight checked
# when they turn it into text (STRINGIFYING) and their result's size checked in every case.
FILTER_CHECKS: dict[str, Callable[..., tuple | None]] = {
    "join": _join,
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "format": _format,
    "urlize": _urlize,
    "batch": _batch,
    "slice": _slice,
}
STRINGIFYING = frozenset(
    {"string", "tojson", "pprint", "xmlattr", "urlencode", "list", "sum", "escape", "e", "forceescape"}
)


def capped_filter(name: str, func: Callable, limit: Callable[[], int]) -> Callable:
    """`func` (a Jinja filter) with its input checked before and its result checked after it runs."""
    # _PassArg is private: how Jinja2 marks a filter that receives the context, eval context or environment
    # first (set by the public pass_context & co.), with no public reader. tests/test_library_canaries.py
    # fails when an upgrade changes it.
    passes_something = _PassArg.from_obj(func) is not None
    check = FILTER_CHECKS.get(name)

    def filter_(*args, **kwargs):
        cap = limit()
        head, data = (args[:1], args[1:]) if passes_something else ((), args)
        if check is not None and data:
            replaced = check(cap, *data, **kwargs)
            if replaced is not None:  # an iterable argument was read here; pass on what was read
                data = tuple(replaced)
                kwargs = {}
        elif name in STRINGIFYING and data:
            check_weight(data[0], cap, f"a text (with {name})")
        return check_result(func(*head, *data, **kwargs), cap)

    filter_.__dict__.update(getattr(func, "__dict__", {}))  # keeps jinja_pass_arg
    filter_.__name__ = getattr(func, "__name__", name)
    return filter_

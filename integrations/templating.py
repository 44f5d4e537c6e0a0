"""User templates and expressions: Jinja2's sandbox, with caps on output size and render time.

Public contract (the builder and the test interface call these):

- `render(text, context, *, html=False) -> str`: renders a template; `html=True` autoescapes.
- `render_header(text, context) -> str`: like render, with CR and LF removed (header injection).
- `evaluate(expression, context) -> Any`: evaluates a sandboxed expression such as `item.plan == "pro"`.
- `validate_template(text) -> TemplateProblem | None` and `validate_expression(text)`: syntax and
  sandbox problems found before saving, with the line number and the reason.
- `render_layout(layout, content_html, context) -> str` and `validate_layout(text)`: an email layout, the
  HTML around a message with `{% block content %}{% endblock %}` where the message goes (same sandbox,
  same caps).
- `TemplateError(message, line=None)`: every failure while rendering (unknown variable, sandbox
  violation, output or time cap). Its message says what to fix; the engine treats it as permanent.

Why the caps: the sandbox stops attribute escapes (`__class__`, `__subclasses__`; Jinja2 >= 3.1.6) but
not work: `'a' * 10**8`, `ns.s ~ ns.s` in a loop or nested loops would render for minutes. So every
operator, filter, method call, output and captured block that can build a value is sized before it runs
(integrations/template_caps.py), output is counted while it streams, and a watchdog thread raises
`TemplateError` in the rendering thread when TEMPLATE_MAX_SECONDS passes (between two Python steps: the
size checks are what stop a single huge C-level operation).
"""

from __future__ import annotations

import ctypes
import functools
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import jinja2
from django.conf import settings
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from integrations import template_caps


class TemplateError(Exception):
    def __init__(self, message: str, line: int | None = None):
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


class RenderTimeout(BaseException):
    """Injected by the watchdog; a BaseException so that no `except Exception` inside Jinja swallows it."""


@dataclass(frozen=True)
class TemplateProblem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}" if self.line else self.message


_render_state = threading.local()


def _max_output() -> int:
    """TEMPLATE_MAX_OUTPUT, read once per render (the checks ask for it at every operation)."""
    return getattr(_render_state, "max_output", None) or settings.TEMPLATE_MAX_OUTPUT


class _CappedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` so that its operands are weighed (template_caps.check_parts) before they are joined.

    Jinja2 has no public hook for `~` (the sandbox intercepts binary operators, and `~` is not one), so
    this overrides the compiler's internal `visit_Concat` with a copy of Jinja's own plus that one call.
    tests/test_library_canaries.py fails when an upgrade changes Jinja's version: port the change here.
    """

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.checked_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class CappedSandbox(SandboxedEnvironment):
    """A sandbox that refuses to build any value bigger than the output cap (see template_caps.py).

    Constant folding is off (`optimized=False`): folding runs filters and `~` at compile time, outside
    the render's time cap.
    """

    code_generator_class = _CappedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, finalize=self.checked_output, **options)
        self.concat = template_caps.capped_concat(_max_output)  # type: ignore[method-assign]  # Jinja2 calls it
        self.filters = {
            name: template_caps.capped_filter(name, func, _max_output) for name, func in self.filters.items()
        }
        self.globals["lipsum"] = _short_lipsum

    def checked_parts(self, parts: tuple) -> tuple:
        return template_caps.check_parts(parts, _max_output())

    def checked_output(self, value: Any) -> Any:
        return template_caps.check_weight(value, _max_output(), "an output")

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        cap = _max_output()
        template_caps.check_binop(operator_name, left, right, cap)
        result = super().call_binop(context, operator_name, left, right)
        return template_caps.check_result(result, cap)

    def call(__self, __context, __obj, /, *args: Any, **kwargs: Any) -> Any:
        cap = _max_output()
        args = template_caps.check_call(__obj, args, kwargs, cap)
        return template_caps.check_result(super().call(__context, __obj, *args, **kwargs), cap)


def _short_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's lorem ipsum, with at most 100 paragraphs of at most 1000 words."""
    if n > 100 or max > 1000:
        raise template_caps.CapExceeded("lipsum() makes at most 100 paragraphs of 1000 words.")
    return generate_lorem_ipsum(n, html, min, max)


def _environment(autoescape: bool) -> CappedSandbox:
    return CappedSandbox(undefined=jinja2.StrictUndefined, autoescape=autoescape, keep_trailing_newline=True)


TEXT_ENV = _environment(False)
HTML_ENV = _environment(True)


class _Watchdog:
    """One thread per process that interrupts renders past their deadline (no thread per render)."""

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self.lock:
                late = [tid for tid, deadline in self.deadlines.items() if deadline < now]
                for tid in late:
                    del self.deadlines[tid]
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(tid), ctypes.py_object(RenderTimeout)
                    )

    def arm(self, seconds: float) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="template-watchdog", daemon=True)
                self.thread.start()
            self.deadlines[threading.get_ident()] = time.monotonic() + seconds

    def disarm(self) -> None:
        with self.lock:
            self.deadlines.pop(threading.get_ident(), None)


_watchdog = _Watchdog()


def _timeout_error() -> TemplateError:
    return TemplateError(
        f"This template took longer than {settings.TEMPLATE_MAX_SECONDS:g} s to render; "
        "loop over fewer values."
    )


# Jinja2's parser speaks of chunks, tokens and print statements; people read these instead.
PLAIN_WORDS: list[tuple[re.Pattern, str]] = [
    (
        re.compile(r"^chunk after expression$"),
        "Something follows the expression that does not belong to it: a missing operator "
        "(==, and, or) or quote, or an extra word?",
    ),
    (
        re.compile(r"^unexpected 'end of template'$"),
        "The expression ends too early: something is missing after the last operator.",
    ),
    (
        re.compile(r"^unexpected end of template.*"),
        "The template ends before a {{ … }} or {% … %} is closed.",
    ),
    (
        re.compile(r"^expected token 'end of print statement', got '(.+)'$"),
        r"Inside {{ … }}, “\1” does not belong after the value: close the braces, or add an operator or a quote.",
    ),
    (
        re.compile(r"^expected token 'end of statement block', got '(.+)'$"),
        r"Inside {% … %}, “\1” does not belong there: close the tag with %}.",
    ),
    (re.compile(r"^expected token '(.+)', got '(.+)'$"), r"Expected “\1” here, found “\2”."),
    (
        re.compile(r"^unexpected '(.)'$"),
        r"There is a “\1” that closes or opens nothing here: check the brackets.",
    ),
    (re.compile(r"^unexpected char '(.+)' at \d+$"), r"The character “\1” cannot be used here."),
    (
        re.compile(r"^Encountered unknown tag '(.+?)'.*"),
        r"“{% \1 %}” is not a template command (use if, for, set … with their end tags).",
    ),
    (
        re.compile(
            r"^Unexpected end of template. Jinja was looking for the following tags: .*'(end\w+)'.*", re.S
        ),
        r"A block is not closed: add {% \1 %}.",
    ),
    (re.compile(r"^'(?:dict object|item)' has no attribute '(.+)'$"), r"The item has no field “\1”"),
    (re.compile(r"^'(.+)' is undefined$"), r"“\1” is not a variable here (use item.… or run.…)"),
]


def plain(message: str | None) -> str:
    """A Jinja2 message in plain words, when we know a better way to say it."""
    message = (message or "").strip()
    for pattern, replacement in PLAIN_WORDS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def _problem_from(exc: Exception) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, template_caps.CapExceeded):
        return TemplateError(str(exc))
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(f"{plain(exc.message)}. Use a field the item has, or give it a default.")
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return TemplateError(f"Not allowed in templates: {str(exc).rstrip('.')}.")
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(plain(exc.message) or "Syntax error.", exc.lineno)
    return TemplateError(f"{type(exc).__name__}: {exc}")


def _guarded(fn, *args):
    _watchdog.arm(settings.TEMPLATE_MAX_SECONDS)
    _render_state.max_output = settings.TEMPLATE_MAX_OUTPUT
    try:
        try:
            return fn(*args)
        finally:
            _watchdog.disarm()
            _render_state.max_output = None
    except RenderTimeout:
        raise _timeout_error() from None
    except TemplateError:
        raise
    except Exception as exc:
        raise _problem_from(exc) from exc


def _stream(template: jinja2.Template, context: dict[str, Any]) -> str:
    cap = _max_output()
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > cap:
            raise TemplateError(f"This template renders more than {cap:,} characters; shorten it.")
        parts.append(chunk)
    return "".join(parts)


# Compiling costs ~20x rendering, and a batch renders the same few templates thousands of times.
@functools.lru_cache(maxsize=1024)
def _compile(html: bool, text: str) -> jinja2.Template:
    try:
        return (HTML_ENV if html else TEXT_ENV).from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(plain(exc.message) or "Syntax error.", exc.lineno) from exc


@functools.lru_cache(maxsize=1024)
def _compile_expression(expression: str):
    try:
        return TEXT_ENV.compile_expression(expression, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(plain(exc.message) or "Syntax error.", exc.lineno) from exc


def render(text: str, context: dict[str, Any], *, html: bool = False) -> str:
    """Render a user template; raises TemplateError with a message a person can act on."""
    if not text:
        return ""
    template = _compile(html, text)
    return _guarded(_stream, template, context)


def render_header(text: str, context: dict[str, Any]) -> str:
    """Render a value that goes into a header (subject, recipient, HTTP header): no CR/LF survive."""
    return render(text, context).replace("\r", " ").replace("\n", " ").strip()


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate a sandboxed Jinja2 expression (a condition) against the context."""
    result = _guarded(_compile_expression(expression), context)
    if isinstance(result, jinja2.Undefined):
        _guarded(result._fail_with_undefined_error)
    return result


def validate_template(text: str) -> TemplateProblem | None:
    """The first syntax problem of a template (line and reason), or None when it compiles."""
    try:
        TEXT_ENV.parse(text or "")
    except jinja2.TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno, plain(exc.message) or "Syntax error.")
    return None


LAYOUT_CONTENT = "rowbell_layout_content"
LAYOUT_NEEDS_BLOCK = "A layout needs one {% block content %}{% endblock %} where the message goes."


@functools.lru_cache(maxsize=256)
def _compile_layout(text: str) -> jinja2.Template:
    """The layout with its content block's body replaced by the message (compiled from the parsed tree,
    so no loader and no `extends` are needed, and the sandbox and caps apply as to any template)."""
    try:
        tree = HTML_ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "Syntax error.", exc.lineno) from exc
    blocks = [block for block in tree.find_all(nodes.Block) if block.name == "content"]
    if len(blocks) != 1:
        raise TemplateError(LAYOUT_NEEDS_BLOCK)
    blocks[0].body = [nodes.Output([nodes.Name(LAYOUT_CONTENT, "load")])]
    return HTML_ENV.from_string(tree)


def render_layout(layout: str, content_html: str, context: dict[str, Any]) -> str:
    """The already rendered (and escaped) message HTML inside the layout, rendered with `context`."""
    from markupsafe import Markup

    template = _compile_layout(layout)
    return _guarded(_stream, template, {**context, LAYOUT_CONTENT: Markup(content_html)})


def validate_layout(text: str) -> TemplateProblem | None:
    """A layout's syntax problem, or a missing content block, or None."""
    try:
        _compile_layout(text or "")
    except TemplateError as exc:
        return TemplateProblem(exc.line, exc.message)
    return None


def template_variables(text: str) -> set[str]:
    """The top-level names a template reads (e.g. {"item", "unsubscribe_url"}); empty when it does not parse."""
    from jinja2 import meta

    try:
        return set(meta.find_undeclared_variables(TEXT_ENV.parse(text or "")))
    except jinja2.TemplateSyntaxError:
        return set()


def validate_expression(text: str) -> TemplateProblem | None:
    """The syntax problem of a condition expression, or None."""
    if not (text or "").strip():
        return TemplateProblem(None, "Write an expression, like item.plan == 'pro'.")
    try:
        TEXT_ENV.compile_expression(text)
    except jinja2.TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno, plain(exc.message) or "Syntax error.")
    return None

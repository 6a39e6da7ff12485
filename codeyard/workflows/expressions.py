"""Templates (``${inputs.x}``, ``${steps.s.field}``), conditions and extraction — no ``eval``.

Conditions go through ``simpleeval`` (a small AST walker with no access to builtins, attributes
starting with ``_`` or imports); names are ``inputs``, ``steps``, ``vars``, ``item``, ``index``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from codeyard.domain.errors import ValidationFailed

TEMPLATE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_\-\[\]\.]*)\s*\}")
ROOTS = ("inputs", "steps", "vars", "item", "index")


class TemplateError(ValueError):
    """A reference that names nothing (the step fails with this message)."""


def references(text: str) -> list[str]:
    """Dotted paths a template refers to, in order."""
    return [m.group(1) for m in TEMPLATE.finditer(text)]


def step_refs(text: str) -> set[str]:
    """Step ids a template or condition reads (``steps.<id>…``)."""
    found = {p.split(".")[1] for p in references(text) if p.startswith("steps.") and "." in p[6:]}
    found |= set(re.findall(r"\bsteps\.([A-Za-z_][A-Za-z0-9_\-]*)", text))
    found |= set(re.findall(r"\bsteps\[['\"]([A-Za-z_][A-Za-z0-9_\-]*)['\"]\]", text))
    return found


def var_refs(text: str) -> set[str]:
    """Variable names a template or condition reads (``vars.<name>``)."""
    return set(re.findall(r"\bvars\.([A-Za-z_][A-Za-z0-9_\-]*)", text))


def lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """``steps.build.run_id`` or ``inputs.items[0]`` against the scope."""
    value: Any = scope
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list) or index >= len(value):
                raise TemplateError(f"${{{path}}}: no item {index}")
            value = value[index]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TemplateError(f"${{{path}}} names nothing (no '{part}')")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def render(template: str, scope: Mapping[str, Any]) -> str:
    """Each ``${path}`` replaced by its value (JSON for lists and objects)."""
    return TEMPLATE.sub(lambda m: _text(lookup(m.group(1), scope)), template)


def render_value(template: str, scope: Mapping[str, Any]) -> Any:
    """A template that is exactly one reference keeps its type (a list stays a list)."""
    match = TEMPLATE.fullmatch(template.strip())
    if match:
        return lookup(match.group(1), scope)
    return render(template, scope)


def render_data(data: Any, scope: Mapping[str, Any]) -> Any:
    """Templates inside nested options (``agent_options``) rendered too."""
    if isinstance(data, str):
        return render(data, scope)
    if isinstance(data, list):
        return [render_data(v, scope) for v in data]
    if isinstance(data, dict):
        return {k: render_data(v, scope) for k, v in data.items()}
    return data


def _evaluator(scope: Mapping[str, Any]) -> EvalWithCompoundTypes:
    names = {k: scope.get(k) for k in ROOTS}
    functions = {"len": len, "int": int, "float": float, "str": str, "bool": bool}
    return EvalWithCompoundTypes(names=names, functions=functions)


def check_condition(expression: str) -> str | None:
    """A syntax problem in a condition, or None (static validation)."""
    try:
        _evaluator({}).parse(expression)
    except (SyntaxError, InvalidExpression) as exc:
        return str(exc) or type(exc).__name__
    return None


def evaluate(expression: str, scope: Mapping[str, Any]) -> bool:
    """The condition's truth; a condition that cannot be evaluated raises :class:`TemplateError`
    (the step fails closed rather than guessing)."""
    try:
        return bool(_evaluator(scope).eval(render_condition(expression)))
    except (SyntaxError, InvalidExpression, KeyError, TypeError, ValueError) as exc:
        raise TemplateError(f"condition {expression!r} cannot be evaluated: {exc}") from exc


def render_condition(expression: str) -> str:
    """``${…}`` inside a condition is accepted too: it becomes the plain name path."""
    return TEMPLATE.sub(lambda m: m.group(1), expression)


def jsonpath_parse(path: str) -> Any:
    """The JSONPath parser, imported on first use: the server's start-up imports this module
    (the workflow engine) but rarely a JSONPath (issue 15)."""
    from jsonpath_ng.ext.parser import parse

    return parse(path)


def check_jsonpath(path: str) -> str | None:
    from jsonpath_ng.exceptions import JsonPathParserError

    try:
        jsonpath_parse(path)
    except (JsonPathParserError, Exception) as exc:  # the parser raises plain Exceptions too
        return str(exc)
    return None


def check_regex(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def extract(text: str, regex: str | None, jsonpath: str | None) -> Any:
    """The first match: a regex's first group (or whole match), or the JSONPath's value(s)."""
    if regex is not None:
        match = re.search(regex, text, re.MULTILINE)
        if match is None:
            raise TemplateError(f"regex {regex!r} matched nothing")
        return match.group(1) if match.groups() else match.group(0)
    if jsonpath is None:
        raise ValidationFailed("An extract step needs 'regex' or 'jsonpath'.")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"the source is not JSON ({exc}), so JSONPath cannot apply") from exc
    found = [m.value for m in jsonpath_parse(jsonpath).find(document)]
    if not found:
        raise TemplateError(f"JSONPath {jsonpath!r} matched nothing")
    return found[0] if len(found) == 1 else found

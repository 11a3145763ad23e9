"""OctoPrint-Webhooks-compatible ``@param`` templates, with their known faults fixed.

The token rule (docs/webhooks.md): ``@`` starts a token only at the start of a
string or after a character that cannot be part of a name or an address (so
``me@example.com`` stays text); the name is a letter or ``_`` followed by
letters, digits and ``_``; each ``.`` directly followed by a letter, digit or
``_`` continues the path (``@job.file.name``). The token ends at the first
character that cannot continue it, so ``@job.file.name,`` and ``@topic.`` work.
``@@`` is a literal ``@``. Substituted text is never expanded again.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

TOKEN = re.compile(r"@@|(?<![A-Za-z0-9_.+\-@])@([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)")

# The @params an event provides (see event_params in appliance.webhooks.enqueue).
KNOWN_ROOTS = frozenset({
    "deviceIdentifier", "apiSecret", "topic", "message", "extra", "state", "job", "progress",
    "currentZ", "offsets", "meta", "currentTime", "percentCompleteMilestone", "printer",
    "sequence", "event", "eventId", "occurredAt", "snapshot", "eventNumber",
})
SNAPSHOT = "@snapshot"
# Deeper JSON than any receiver needs; Python's own parser and the renderer recurse per level.
MAX_DEPTH = 32

# What is under each @param, so a typo deeper in a path (@job.file.nam) is caught like a typo
# in its root (@progres). The shapes are OctoPrint's get_current_data() (state, job, progress)
# and Herald's own params; ANY marks data whose keys vary (event payloads, tool names).
ANY = "*"
_LEAF: dict[str, Any] = {}
PARAM_SHAPES: dict[str, Any] = {
    "state": {"text": _LEAF, "error": _LEAF, "flags": {flag: _LEAF for flag in (
        "operational", "printing", "cancelling", "pausing", "resuming", "finishing", "closedOrError",
        "error", "paused", "ready", "sdReady")}},
    "job": {"file": {key: _LEAF for key in ("name", "path", "display", "origin", "size", "date")},
            "estimatedPrintTime": _LEAF, "averagePrintTime": _LEAF, "lastPrintTime": _LEAF,
            "filament": ANY, "user": _LEAF},
    "progress": {key: _LEAF for key in ("completion", "filepos", "printTime", "printTimeLeft",
                                        "printTimeLeftOrigin")},
    "printer": {"id": _LEAF, "name": _LEAF},
    "extra": ANY, "offsets": ANY, "meta": ANY,
}
DEFERRED = "__herald_template__"  # a value waiting for OAuth @params at send time


@dataclass
class TemplateProblem:
    field: str
    message: str
    position: int  # offset in the field's text, 0-based
    line: int = 1
    column: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "problem": self.message, "position": self.position,
                "line": self.line, "column": self.column}


@dataclass
class TemplateError(ValueError):
    problems: list[TemplateProblem] = field(default_factory=list)

    def __str__(self) -> str:
        first = self.problems[0]
        return f"{first.field}: {first.message} (line {first.line}, column {first.column})"


def _line_col(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return line, column


def _problem(name: str, text: str, position: int, message: str) -> TemplateProblem:
    line, column = _line_col(text, position)
    return TemplateProblem(name, message, position, line, column)


def path_problem(path: str) -> str | None:
    """Why the event data never has this dotted path (``job.file.nam``), or None when it may."""
    parts = path.split(".")
    node: Any = PARAM_SHAPES.get(parts[0], _LEAF)
    for depth, part in enumerate(parts[1:], start=1):
        if node == ANY:
            return None
        here = "@" + ".".join(parts[:depth])
        if not node:
            return f"{here} has nothing under it, so @{path} is always empty"
        if part not in node:
            close = difflib.get_close_matches(part, list(node), n=1)
            hint = f"did you mean {here}.{close[0]}?" if close else f"it has {', '.join(sorted(node))}"
            return f"the event data has no {part} in {here} ({hint})"
        node = node[part]
    return None


def _param_problems(name: str, text: str, match: re.Match[str], *, allow_unknown: bool) -> list[TemplateProblem]:
    path = match.group(1)
    root = path.split(".")[0]
    if root not in KNOWN_ROOTS:
        if allow_unknown:
            return []
        return [_problem(name, text, match.start(), f"unknown parameter @{root} (write @@ for a literal @)")]
    problem = None if allow_unknown else path_problem(path)
    return [_problem(name, text, match.start(), problem)] if problem else []


def check_template(name: str, text: str, *, allow_unknown: bool = False,
                   snapshot_allowed: bool = False, values_are_strings: bool = False) -> list[TemplateProblem]:
    """Problems of one JSON template field (headers or body), each with its position."""
    problems: list[TemplateProblem] = []
    too_deep = _too_deep(text)
    if too_deep is not None:
        return [_problem(name, text, too_deep, f"nested more than {MAX_DEPTH} levels deep")]
    try:
        parsed = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        return [_problem(name, text, exc.pos, f"not valid JSON: {exc.msg}")]
    except RecursionError:  # not reached after _too_deep; kept so no input can become a 500
        return [_problem(name, text, 0, f"nested more than {MAX_DEPTH} levels deep")]
    if not isinstance(parsed, dict):
        return [_problem(name, text, len(text) - len(text.lstrip()), "must be a JSON object ({...})")]
    for match in TOKEN.finditer(text):
        root = match.group(1)
        if root is None:
            continue
        root = root.split(".")[0]
        if root == "snapshot" and not snapshot_allowed:
            problems.append(_problem(name, text, match.start(),
                                     "@snapshot can only be a top-level value of the body"))
        else:
            problems += _param_problems(name, text, match, allow_unknown=allow_unknown)
    if snapshot_allowed:
        for key, value in parsed.items():
            if _contains_snapshot(value, top=True):
                pos = text.find(SNAPSHOT)
                problems.append(_problem(name, text, max(pos, 0),
                                         f'"@snapshot" must be the whole value of a top-level key, not inside "{key}"'))
                break
    if values_are_strings:
        for key, value in parsed.items():
            if not isinstance(value, str):
                pos = text.find(json.dumps(key))
                problems.append(_problem(name, text, max(pos, 0), f'header "{key}" must have a text value'))
    return problems


def _too_deep(text: str) -> int | None:
    """The offset where JSON text first opens more than MAX_DEPTH arrays or objects, or None."""
    depth = 0
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return position
        elif char in "]}":
            depth -= 1
    return None


def _contains_snapshot(value: Any, *, top: bool) -> bool:
    if isinstance(value, str):
        return SNAPSHOT in value and not (top and value == SNAPSHOT)
    if isinstance(value, dict):
        return any(_contains_snapshot(v, top=False) for v in value.values())
    if isinstance(value, list):
        return any(_contains_snapshot(v, top=False) for v in value)
    return False


def check_url(name: str, text: str, *, allow_unknown: bool = False) -> list[TemplateProblem]:
    problems = []
    for match in TOKEN.finditer(text):
        root = match.group(1)
        if root is None:
            continue
        root = root.split(".")[0]
        if root == "snapshot" or (root not in KNOWN_ROOTS and not allow_unknown):
            problems.append(_problem(name, text, match.start(), f"parameter @{root} cannot be used here"))
        elif root in KNOWN_ROOTS:
            problems += _param_problems(name, text, match, allow_unknown=allow_unknown)
    return problems


# --- rendering ---------------------------------------------------------------------


_MISSING = object()


def lookup(params: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING; list items by index (``@offsets.0``)."""
    parts = path.split(".")
    if parts[0] not in params:
        return _MISSING
    value = params[parts[0]]
    for part in parts[1:]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def as_text(value: Any) -> str:
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def render_string(text: str, params: dict[str, Any], *, defer: frozenset[str] | None = None) -> Any:
    """One template string: a lone token keeps its JSON type, otherwise text.

    Names in ``defer`` (or, when defer is a non-None set, any unknown name) are
    left for the OAuth response at send time: the result is then a marker object
    that ``resolve_deferred`` finishes.
    """
    whole = TOKEN.fullmatch(text)
    if whole and whole.group(1):
        path = whole.group(1)
        value = lookup(params, path)
        if value is _MISSING and defer is not None and path.split(".")[0] not in params:
            return {DEFERRED: [{"t": path}]}
        return "" if value is _MISSING else value
    parts: list[Any] = []
    deferred = False
    last = 0
    for match in TOKEN.finditer(text):
        parts.append(text[last:match.start()])
        last = match.end()
        path = match.group(1)
        if path is None:
            parts.append("@")
            continue
        value = lookup(params, path)
        if value is _MISSING and defer is not None and path.split(".")[0] not in params:
            parts.append({"t": path})
            deferred = True
        else:
            parts.append(as_text(value))
    parts.append(text[last:])
    if deferred:
        return {DEFERRED: [p for p in parts if p != ""]}
    return "".join(parts)


def render(value: Any, params: dict[str, Any], *, defer: frozenset[str] | None = None) -> Any:
    if isinstance(value, str):
        return render_string(value, params, defer=defer)
    if isinstance(value, dict):
        return {k: render(v, params, defer=defer) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, params, defer=defer) for v in value]
    return value


def resolve_deferred(value: Any, params: dict[str, Any]) -> Any:
    """Fill values left for the OAuth response (see render_string)."""
    if isinstance(value, dict):
        if set(value) == {DEFERRED}:
            parts = value[DEFERRED]
            if len(parts) == 1 and isinstance(parts[0], dict):
                found = lookup(params, parts[0]["t"])
                return "" if found is _MISSING else found
            return "".join(p if isinstance(p, str) else as_text(lookup(params, p["t"])) for p in parts)
        return {k: resolve_deferred(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_deferred(v, params) for v in value]
    return value


def render_url(template: str, params: dict[str, Any]) -> str:
    """The URL with each token's text URL-encoded (so a value cannot change the URL's shape)."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "@"
        return quote(as_text(lookup(params, match.group(1))), safe="")

    return TOKEN.sub(substitute, template)


def header_text(value: Any) -> str:
    """A rendered header value: line breaks and NUL from event data become spaces (no header injection)."""
    return as_text(value).replace("\r", " ").replace("\n", " ").replace("\0", " ")


def form_value(value: Any) -> str | None:
    """A top-level body value in form, query or multipart encoding, as OctoPrint-Webhooks sends it.

    Objects and lists become JSON text (``json.dumps`` with its default separators and
    ASCII escapes), numbers their decimal text, true/false ``True``/``False`` (Python's
    words, which is what its receivers see) and null is dropped (None is returned).
    """
    if value is None or value is _MISSING:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else str(value)

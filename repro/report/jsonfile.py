"""report.json as text: written indented with short lists on one line, read back no deeper than MAX_DEPTH."""

from __future__ import annotations

import json
import json.encoder
import math

from repro.errors import ScenarioError

MAX_DEPTH = 32  # how deep a report.json may nest (the lab's own: about 8 levels)
_encode_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str (C)


class ResultsError(ScenarioError):
    """A report.json or trial record that cannot be read back (user input, like a bad scenario)."""


def load_json(text: str, what: str) -> object:
    """A report's or record's JSON, no deeper than MAX_DEPTH (the lab's own nest about 8 levels); anything
    else is a ResultsError. A crafted file of 100,000 nested lists would otherwise end in a RecursionError
    here or in whatever walks it next (the writer, a merge)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise ResultsError(f"{what} nests deeper than {MAX_DEPTH} levels: not a lab report") from None
    level: list[tuple[object, int]] = [(data, 1)]
    while level:  # without recursion: the depth of every container
        value, depth = level.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ResultsError(f"{what} nests deeper than {MAX_DEPTH} levels: not a lab report")
            level.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return data


def indented(value: object, indent: str = "") -> str:
    """``json.dumps(value, indent=2, sort_keys=True)``, except that a list of plain numbers or of strings
    without brackets or quotes stays on one line. Written out here because the pure-Python encoder
    that ``indent`` selects took 15 s for a run of 20,000 trials (this: a few)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        items = ",\n".join(f"{inner}{_scalar(str(k))}: {indented(value[k], inner)}" for k in sorted(value))
        return f"{{\n{items}\n{indent}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(_flat_item(item) for item in value):
            return "[" + ", ".join(map(_scalar, value)) + "]"
        inner = indent + "  "
        items = ",\n".join(inner + indented(item, inner) for item in value)
        return f"[\n{items}\n{indent}]"
    return _scalar(value)


def _scalar(value: object) -> str:
    """One JSON leaf as ``json.dumps`` writes it (anything else: json.dumps itself)."""
    if isinstance(value, str):
        return _encode_string(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)


def _flat_item(item: object) -> bool:
    """What a one-line list may hold: finite numbers, and strings without brackets or quotes."""
    if isinstance(item, bool):
        return False
    if isinstance(item, (int, float)):
        return math.isfinite(item)
    return isinstance(item, str) and not any(c in item for c in '[]"')


# -- reading report.json's values back: a wrong type is a ResultsError (user input), never a traceback --


def as_strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ResultsError(f"expected a list, got {value!r}")
    return tuple(str(item) for item in value)


def as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ResultsError(f"expected a list, got {value!r}")
    return value


def as_digests(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ResultsError(f"expected an object of names and digests, got {value!r}")
    return {str(name): str(digest) for name, digest in value.items()}


def as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    return int(str(value))

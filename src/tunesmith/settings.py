"""Settings stated once: command-line flags derived from a config dataclass, and checked bounds.

A field's flag is ``--kebab-name``; its type and default come from the annotation and default;
its help text is the field's trailing ``# comment`` in the source (or ``metadata["help"]``).
Bounds and choices live in the field's metadata and are checked by :func:`check_fields`, so
the Python API and the CLI refuse the same values with the same one-line message::

    temperature: float = field(default=1.0, metadata=bounds(0.01, 100))  # > 0; < 1 safer, > 1 wilder

Metadata keys: ``min``/``max`` (inclusive; ``min_open``/``max_open`` for strict bounds),
``choices``, ``help``, ``flag`` (another flag name), ``cli`` (False = not a flag), ``metavar``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import io
import math
import tokenize
import types
import typing
from functools import cache
from typing import Any

from tunesmith.errors import TunesmithError


def bounds(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """Field metadata for a number in ``[low, high]`` (``low_open``: strictly above ``low``)."""
    return {"min": low, "max": high, "min_open": low_open, "max_open": high_open, **extra}


@cache
def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in ``cls``'s source (empty when unavailable)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    line_field: dict[int, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for number, line in enumerate(source.splitlines(), start=1):
        head = line.strip().split(":", 1)[0]
        if head in names and line.startswith("    ") and not line.startswith("     "):
            line_field[number] = head
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.start[0] in line_field:
            text = token.string.lstrip("#").strip()
            if not text.startswith("fmt:"):
                comments[line_field[token.start[0]]] = text
    return comments


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of an annotation such as ``int | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0], len(options) < len(typing.get_args(annotation))
    return annotation, False


def _number(kind: type, flag: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None  # fmt: skip
        return value

    parse.__name__ = kind.__name__
    return parse


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
               only: list[str] | None = None, skip: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Add one flag per field of dataclass ``cls`` (in ``only``'s order when given).

    Booleans become on/off switches (``--scale`` / ``--no-scale``); every default is None in the
    parser so :func:`from_args` can tell a flag given from one left out.
    """
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name in only or list(by_name):
        field = by_name[name]
        if name in skip or field.metadata.get("cli", True) is False:
            continue
        kind, _ = _base_type(hints[name])
        default = field.default if field.default is not dataclasses.MISSING else None
        text = field.metadata.get("help") or comments.get(name, "")
        shown = "" if default in (None, "") or kind is bool else f" (default {default})"
        flag = flag_name(field)
        options: dict[str, Any] = {"dest": name, "default": None, "help": (text + shown).replace("%", "%%")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = _number(kind, flag) if kind in (int, float) else str
            if "choices" in field.metadata:
                options["choices"] = list(field.metadata["choices"])
            if "metavar" in field.metadata:
                options["metavar"] = field.metadata["metavar"]
        parser.add_argument(flag, **options)


def from_args(cls: type, args: argparse.Namespace, base: Any = None) -> Any:
    """The dataclass the flags mean: ``base`` (default ``cls()``) with every given flag applied."""
    base = base if base is not None else cls()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
             if getattr(args, f.name, None) is not None}  # fmt: skip
    return dataclasses.replace(base, **given)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """``cls``'s resolved field types, once per class (resolving them compiles every annotation:
    about half a millisecond, paid by each request a server validates)."""
    return typing.get_type_hints(cls)


def check_fields(obj: Any, prefix: str = "--") -> None:
    """Check every field of a config object against its type and metadata bounds/choices.

    Raises TunesmithError naming the setting (``--temperature must be …``): a number of the
    wrong type (a string, a bool, ``2.5`` bars), NaN or infinity, or a value out of bounds.
    """
    hints = _hints(type(obj))
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        name = prefix + field.name.replace("_", "-") if prefix == "--" else prefix + field.name
        kind, optional = _base_type(hints[field.name])
        if value is None:
            if optional:
                continue
            raise TunesmithError(f"{name} must be given, got None")
        if kind is bool:
            if not isinstance(value, bool):
                raise TunesmithError(f"{name} must be true or false, got {value!r}")
            continue
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TunesmithError(f"{name} must be a whole number, got {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TunesmithError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise TunesmithError(f"{name} must be a finite number, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise TunesmithError(f"{name} must be text, got {value!r}")
        meta = field.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise TunesmithError(f"{name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        low, high = meta.get("min"), meta.get("max")
        too_low = low is not None and (value <= low if meta.get("min_open") else value < low)
        too_high = high is not None and (value >= high if meta.get("max_open") else value > high)
        if too_low or too_high:
            raise TunesmithError(f"{name} must be {_span(low, high, meta)}, got {value!r}")


def _span(low: float | None, high: float | None, meta: dict[str, Any]) -> str:
    """A bound in words: ``in 1..64`` for whole numbers, ``in (0, 1]`` for real ones, ``>= 0``."""
    if high is None:
        return f"{'>' if meta.get('min_open') else '>='} {_show(low)}"
    if low is None:
        return f"{'<' if meta.get('max_open') else '<='} {_show(high)}"
    if isinstance(low, int) and isinstance(high, int) and not meta.get("min_open") and not meta.get("max_open"):
        return f"in {low}..{high}"
    return f"in {'(' if meta.get('min_open') else '['}{_show(low)}, {_show(high)}{')' if meta.get('max_open') else ']'}"


def _show(number: float | None) -> str:
    if number is None:
        return ""
    return str(number) if isinstance(number, int) else f"{number:g}"

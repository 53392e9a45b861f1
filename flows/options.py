"""Command-line options generated from a domain's Pydantic parameter model: a parameter is declared once.

Each field becomes ``--field-name`` (a one-letter field also ``-f``), its description the help, its default
shown. ``Literal`` fields take one of their values and ``bool`` fields are flags. ``list`` fields take several
values (``--input a.fa b.fa``), or one comma-separated argument with ``json_schema_extra={"split": "comma"}``. A
``dict[Literal[...], bool]`` field of steps to turn off is ``--no STEP``, repeatable. ``json_schema_extra`` may
also name a field's option (``{"cli": "--mosaic"}``). Bounds and patterns are the model's: :func:`parameters`
builds the model from the options given, and a violation is a ``BadInputError`` naming the option.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from flows.params import own_fields_first
from tasks.errors import BadInputError
from tasks.store import NAME_PATTERN, check_name

COMMA = "comma"  # json_schema_extra {"split": "comma"}: one argument, comma-separated (bbox, bands)


def option_name(name: str, field) -> str:
    extra = field.json_schema_extra or {}
    return extra.get("cli") or "--" + name.replace("_", "-")


def _types(annotation: Any) -> list[Any]:
    """The alternatives of a union annotation, ``None`` left out."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _comma(item: type) -> Any:
    def parse(text: str) -> list:
        try:
            return [item(v) for v in text.split(",")]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__} values, got {text!r}") from exc

    return parse


class _TurnOff(argparse.Action):
    """``--no STEP`` (repeatable) to ``{STEP: False, ...}``."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest, None) or {}), value: False})


def add_options(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One option per field of ``model``; an option left out is left to the model's default."""
    for name in own_fields_first(model):
        field = model.model_fields[name]
        extra = field.json_schema_extra or {}
        flags = [option_name(name, field)] + ([f"-{name}"] if len(name) == 1 else [])
        kinds = _types(field.annotation)
        default = field.default
        quiet = field.is_required() or default is None or default is False or "default" in (field.description or "")
        shown = "" if quiet else f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": name, "help": (field.description or "").replace("%", "%%") + shown,
                                  "default": argparse.SUPPRESS}
        first = kinds[0]
        origin = typing.get_origin(first)
        if first is bool:
            kwargs["action"] = "store_true" if default is False else argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(typing.get_args(first))
        elif origin is dict:
            flags = ["--no"]
            kwargs.update(action=_TurnOff, metavar="STEP", choices=list(typing.get_args(typing.get_args(first)[0])))
        elif origin is list or any(typing.get_origin(k) is list for k in kinds):
            item = typing.get_args(next(k for k in kinds if typing.get_origin(k) is list))[0]
            if extra.get("split") == COMMA:
                kwargs["type"] = _comma(item)
            else:
                kwargs.update(nargs="+", type=item)
        elif first in (int, float):
            kwargs["type"] = first
        parser.add_argument(*flags, **kwargs)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def parameters(model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """The run's parameters: ``values`` (the options given) checked and completed by ``model``; a value out of
    bounds is a BadInputError naming its option."""
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        field = model.model_fields.get(name)
        option = option_name(name, field) if field is not None else name
        if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == NAME_PATTERN:
            check_name(error["input"], option.lstrip("-").replace("-", " "), option)  # the friendlier message
        raise BadInputError(f"{option}: {error['msg']} (got {error.get('input')!r})") from None

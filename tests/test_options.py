"""CLI options generated from the parameter models: every field is an option, parsed as its type, checked by the
model, and a violation names the option."""

from __future__ import annotations

import argparse
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from flows.domains import domains
from flows.options import add_options, option_name, parameters
from tasks.errors import BadInputError
from tasks.store import NAME_PATTERN


class Example(BaseModel):
    mode: Literal["a", "b"] = Field("a", description="a mode")
    count: int = Field(3, ge=1, description="how many")
    share: float | None = Field(None, gt=0, description="a share")
    fast: bool = Field(False, description="go fast")
    files: str | list[str] | None = Field(None, description="inputs")
    bbox: list[float] | None = Field(None, min_length=4, json_schema_extra={"split": "comma"}, description="box")
    steps: dict[Literal["x", "y"], bool] | None = Field(None, description="steps to turn off")
    k: int = Field(4, description="size")
    run_id: str | None = Field(None, pattern=NAME_PATTERN, description="run id")


def parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, Example)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if k != "debug"}
    return parameters(Example, given).model_dump()


def test_nothing_given_is_the_models_defaults() -> None:
    assert parse() == Example().model_dump()


def test_each_kind_of_field_parses_as_its_type() -> None:
    got = parse("--mode", "b", "--count", "5", "--share", "0.5", "--fast", "--files", "a.fa", "b.fa",
                "--bbox", "1,2,3,4", "--no", "x", "--no", "y", "-k", "6")
    assert got == {"mode": "b", "count": 5, "share": 0.5, "fast": True, "files": ["a.fa", "b.fa"],
                   "bbox": [1.0, 2.0, 3.0, 4.0], "steps": {"x": False, "y": False}, "k": 6, "run_id": None}


def test_a_choice_outside_the_literal_is_refused_by_the_parser() -> None:
    with pytest.raises(argparse.ArgumentError):
        parse("--mode", "c")


@pytest.mark.parametrize("argv, message", [(("--count", "0"), "--count: Input should be greater than or equal to 1"),
                                           (("--bbox", "1,2"), "--bbox: List should have at least 4 items"),
                                           (("--run-id", "../x"), "run id '../x' is not a valid name")])
def test_a_value_the_model_refuses_names_the_option(argv: tuple, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse(*argv)


@pytest.mark.parametrize("name", ["satellite", "genome", "sentiment", "market"])
def test_every_field_of_a_domain_is_an_option_and_its_defaults_are_the_models(name: str) -> None:
    from flows.cli import build_parser

    model = domains()[name].load_params()
    args = vars(build_parser().parse_args(["run", name]))
    given = {k: v for k, v in args.items() if k not in ("command", "domain", "debug")}
    assert given == {} and parameters(model, given) == model()
    parser = argparse.ArgumentParser()
    add_options(parser, model)
    options = {option for action in parser._actions for option in action.option_strings}
    for field_name, field in model.model_fields.items():
        kind = "--no" if field_name == "clean_options" else option_name(field_name, field)
        assert kind in options, f"{field_name} of {model.__name__} has no option"


def test_a_domains_own_options_come_before_the_shared_ones() -> None:
    from flows.params import MarketParams, RunOptions

    parser = argparse.ArgumentParser()
    add_options(parser, MarketParams)
    dests = [action.dest for action in parser._actions if action.dest not in ("help", "debug")]
    shared = list(RunOptions.model_fields)
    assert dests[0] == "input" and dests[-len(shared):] == shared
    assert list(MarketParams.model_json_schema()["properties"]) == dests

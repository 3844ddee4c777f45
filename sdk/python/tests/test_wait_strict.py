"""wait()/wait_async() use flowrun._schema's helpers: answer_schema(T) for the stored schema and
validate_answer (strict pydantic) for the answer — the one translation and strictness the
C++ validator's agreement with pydantic is proven for (test_schema_agreement.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pydantic
import pytest
from pydantic import BaseModel, field_validator

import importlib

from flowrun import _core
from flowrun._schema import UnsupportedAnswerSchema, answer_schema

wait_module = importlib.import_module("flowrun.wait")  # flowrun.wait is the function


def stored(tp: Any) -> dict[str, Any]:
    _, text = wait_module._schema_of(tp, None)
    return json.loads(text)


def without_marker(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$schema"}


def test_the_stored_schema_is_answer_schema_without_the_draft_7_marker() -> None:
    for tp in (bool, int, dt.datetime, dt.time, dict[str, int], list[dt.date]):
        assert stored(tp) == without_marker(answer_schema(tp)), tp


def test_a_naive_datetime_wait_takes_an_answer_without_offset_as_pydantic_does() -> None:
    # answer_schema's timezone hint: a plain datetime takes a naive answer (pydantic does); the
    # untranslated-hint path required an offset, so the C++ validator refused a good answer.
    schema = json.dumps(stored(dt.datetime))
    assert _core.validate_against_schema(schema, '"2026-12-03T12:00:00"') is None
    assert wait_module._answer(dt.datetime, "answered", '"2026-12-03T12:00:00"') == dt.datetime(2026, 12, 3, 12)


class Checked(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def not_admin(cls, v: str) -> str:
        if v == "admin":
            raise ValueError("no")
        return v


def test_a_custom_validator_is_refused_when_the_wait_is_declared() -> None:
    # The C++ validator cannot run it: an answer it accepts could fail in the flow after resume.
    with pytest.raises(UnsupportedAnswerSchema, match="custom validator"):
        wait_module._schema_of(Checked, None)


@pytest.mark.parametrize("tp,answer", [(int, '"1"'), (bool, '"true"'), (bool, "1"), (str, "1"), (float, '"0.5"')])
def test_answers_are_validated_strictly(tp: Any, answer: str) -> None:
    # Lax pydantic would coerce these; the C++ validator refuses them, so must the flow.
    assert _core.validate_against_schema(json.dumps(stored(tp)), answer) is not None
    with pytest.raises(pydantic.ValidationError):
        wait_module._answer(tp, "answered", answer)


def test_a_schema_dict_is_stored_as_given_and_the_answer_still_validated_strictly() -> None:
    schema = {"type": "integer"}
    tp, text = wait_module._schema_of(int, schema)
    assert tp is int and json.loads(text) == schema
    assert wait_module._answer(int, "answered", "3") == 3
    with pytest.raises(pydantic.ValidationError):
        wait_module._answer(int, "answered", '"3"')

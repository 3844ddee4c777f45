"""flowrun._schema: pydantic's 2020-12-style schemas become draft 7; what cannot agree is refused by name."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Any, Optional, Tuple

import pytest
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError, field_validator
from typing_extensions import Annotated

from flowrun import _core
from flowrun._schema import UnsupportedAnswerSchema, answer_schema, to_validator_schema, validate_answer
from flowrun.errors import UsageError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Hit(BaseModel):
    url: str
    score: float = Field(ge=0, le=1)


class Report(BaseModel):
    title: str
    color: Color = Color.RED
    hits: list[Hit]
    best: Optional[Hit] = None
    pair: Tuple[int, str]
    at: dt.datetime


def cpp(schema: dict[str, Any], value: Any) -> Optional[str]:
    return _core.validate_against_schema(json.dumps(schema), json.dumps(value))


def test_defs_refs_and_prefix_items_become_draft_7() -> None:
    pyd = TypeAdapter(Report).json_schema()
    assert "$defs" in pyd and "prefixItems" in json.dumps(pyd)
    out = to_validator_schema(pyd)
    text = json.dumps(out)
    assert "$defs" not in text and "prefixItems" not in text
    assert out["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert set(out["definitions"]) == {"Color", "Hit"}
    pair = out["properties"]["pair"]
    assert pair["items"] == [{"type": "integer"}, {"type": "string"}] and pair["additionalItems"] is False
    # The color field is {"$ref": ..., "default": "red"}: draft 7 ignores a $ref's siblings, so only the ref stays.
    assert out["properties"]["color"] == {"$ref": "#/definitions/Color"}
    good = {"title": "t", "hits": [{"url": "u", "score": 0.5}], "pair": [1, "a"], "at": "2026-12-03T12:00:00Z"}
    assert cpp(out, good) is None
    reason = cpp(out, dict(good, hits=[{"url": "u", "score": 2}]))
    assert reason is not None and "/hits/0/score" in reason
    assert cpp(out, dict(good, color="green")) is not None
    assert cpp(out, dict(good, pair=[1, "a", 3])) is not None
    assert validate_answer(Report, json.dumps(good)).hits[0].score == 0.5


def test_a_ref_with_validating_siblings_keeps_them_in_an_all_of() -> None:
    out = to_validator_schema({"$defs": {"N": {"type": "integer"}}, "$ref": "#/$defs/N", "minimum": 3,
                               "description": "d"})
    assert out["allOf"] == [{"$ref": "#/definitions/N"}, {"minimum": 3}]
    assert cpp(out, 2) is not None and cpp(out, 3) is None


def test_datetime_timezone_rules() -> None:
    plain = answer_schema(dt.datetime)
    assert cpp(plain, "2026-12-03T12:00:00") is None and cpp(plain, "2026-12-03T12:00:00Z") is None
    # Without answer_schema's hint (a bare pydantic schema) an offset is required: the safe side for AwareDatetime.
    bare = to_validator_schema(TypeAdapter(dt.datetime).json_schema())
    assert cpp(bare, "2026-12-03T12:00:00") is not None and cpp(bare, "2026-12-03T12:00:00+01:00") is None
    # valijson's own date-time check would take these; pydantic refuses them, so the pattern does too.
    for wrong in ("2023-02-29T00:00:00Z", "2026-12-03T12:00:60Z", "2026-12-03T12:00:00|01:00"):
        assert cpp(plain, wrong) is not None, wrong


class WithSet(BaseModel):
    tags: set[str]


class WithValidator(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def no_spaces(cls, v: str) -> str:
        if " " in v:
            raise ValueError("no spaces")
        return v


@pytest.mark.parametrize("tp, match", [
    (Annotated[str, Field(pattern=r"^a+$")], "regular expression"),
    (WithSet, "set"),
    (Annotated[float, Field(multiple_of=0.1)], "multipleOf"),
    (Annotated[str, Field(json_schema_extra={"format": "email"})], "format 'email'"),
    (uuid.UUID, "format 'uuid'"),
    (WithValidator, "custom validator"),
    (Annotated[int, AfterValidator(lambda v: v)], "custom validator"),
    (Annotated[dt.datetime, Field(gt=dt.datetime(2020, 1, 1))], "bound"),
    (dict[int, str], "dict keys"),
    (bytes, "format"),
])
def test_what_cannot_agree_is_refused_with_a_clear_error(tp: Any, match: str) -> None:
    with pytest.raises(UnsupportedAnswerSchema, match=match) as err:
        answer_schema(tp)
    assert isinstance(err.value, UsageError)


def test_refusal_names_the_place() -> None:
    with pytest.raises(UnsupportedAnswerSchema, match=r"/properties/tags/uniqueItems"):
        to_validator_schema(TypeAdapter(WithSet).json_schema())
    with pytest.raises(UnsupportedAnswerSchema, match="only local"):
        to_validator_schema({"$ref": "https://example.com/schema.json"})
    with pytest.raises(UnsupportedAnswerSchema, match="/unevaluatedProperties"):
        to_validator_schema({"type": "object", "unevaluatedProperties": False})
    with pytest.raises(TypeError):
        to_validator_schema("not a schema")  # type: ignore[arg-type]


class A(BaseModel):
    f: dt.datetime


class Level(enum.IntEnum):
    LOW = 0
    HIGH = 1


class B(BaseModel):
    f: Level


def test_strict_validation_is_what_agrees_with_the_cpp_validator() -> None:
    # pydantic's default (lax) mode picks another union member than strict mode for an answer both accept:
    # the number 0 is a unix timestamp to a lax datetime. validate_answer (strict) gives the B (Level.LOW) the C++
    # side accepted it as, since for it a datetime is RFC 3339 text.
    from typing import Union

    answer = json.dumps({"f": 0})
    assert cpp(answer_schema(Union[A, B]), {"f": 0}) is None
    assert isinstance(validate_answer(Union[A, B], answer), B)
    assert isinstance(TypeAdapter(Union[A, B]).validate_json(answer), A)
    with pytest.raises(ValidationError):
        validate_answer(int, "1.0")

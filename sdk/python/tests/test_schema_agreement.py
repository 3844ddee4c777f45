"""The C++ validator and pydantic accept the same wait answers (hypothesis, generated models and answers).

For a generated answer type (nested models, Optional, Enum, Literal, list, tuple,
dict, unions, int/float/str bounds, datetime/date/time) and generated candidate
answers: flowrun._core.validate_against_schema(answer_schema(T), answer) accepts
exactly when pydantic's strict JSON validation (flowrun._schema.validate_answer)
does. Where the C++ side is documented to be the stricter one — a string that
pydantic reads as a date or time but that is not RFC 3339, an integer beyond 64
bits — only the safe direction is asserted: C++ accepts ⇒ pydantic accepts.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import json
import re
from typing import Any, Literal, Optional, Tuple, Union

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, Field, NaiveDatetime, TypeAdapter, ValidationError, create_model
from typing_extensions import Annotated

from flowrun import _core
from flowrun._schema import UnsupportedAnswerSchema, answer_schema, to_validator_schema, validate_answer

_names = itertools.count()
INT64 = (-(2**63), 2**63 - 1)

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
                 st.text(max_size=3), st.just([]), st.just({}))


# --- where the C++ side is knowingly the stricter one -------------------------------------------

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"
                      r"|\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")
_TEMPORAL = [TypeAdapter(t) for t in (dt.datetime, dt.date, dt.time)]


def _pydantic_reads_as_temporal(text: str) -> bool:
    for adapter in _TEMPORAL:
        try:
            adapter.validate_python(text)
            return True
        except ValidationError:
            pass
    return False


def is_exact(value: Any) -> bool:
    """False when `value` holds something only pydantic takes (non-RFC-3339 date/time text, > 64-bit ints)."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, str):
        return _RFC3339.fullmatch(value) is not None or not _pydantic_reads_as_temporal(value)
    if isinstance(value, list):
        return all(is_exact(v) for v in value)
    return all(is_exact(v) for v in value.values())


# --- leaves: (type, candidate answers) -------------------------------------------------------

def bounds(draw: Any, lo: int, hi: int) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if draw(st.booleans()):
        kw[draw(st.sampled_from(["ge", "gt"]))] = draw(st.integers(lo, hi))
    if draw(st.booleans()):
        kw[draw(st.sampled_from(["le", "lt"]))] = draw(st.integers(lo, hi))
    return kw


@st.composite
def int_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    kw = bounds(draw, -50, 50)
    if draw(st.integers(0, 4)) == 0:
        kw["multiple_of"] = draw(st.integers(1, 7))
    tp = Annotated[int, Field(**kw)] if kw else int
    near = st.integers(-60, 60)
    return tp, st.one_of(near, st.integers(*INT64), near.map(float), near.map(lambda i: i + 0.5), near.map(str),
                         st.integers(2**64, 2**80), st.integers(-(2**80), -(2**63) - 1), JUNK)


@st.composite
def float_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    kw = bounds(draw, -50, 50)
    tp = Annotated[float, Field(**kw)] if kw else float
    near = st.floats(-60, 60, allow_nan=False) | st.integers(-60, 60)
    return tp, st.one_of(near, st.floats(allow_nan=False, allow_infinity=False), near.map(str), JUNK)


@st.composite
def str_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    kw: dict[str, Any] = {}
    if draw(st.booleans()):
        kw["min_length"] = draw(st.integers(0, 4))
    if draw(st.booleans()):
        kw["max_length"] = draw(st.integers(kw.get("min_length", 0), 6))
    tp = Annotated[str, Field(**kw)] if kw else str
    return tp, st.one_of(st.text(max_size=8), st.text(alphabet="aé😀\u0301", max_size=8), JUNK)


DATETIMES = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
OFFSETS = st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                           dt.timezone(dt.timedelta(hours=-23, minutes=-59))])


def rfc3339(d: dt.datetime, tz: Any, digits: int, sep: str = "T", z: str = "Z") -> str:
    text = d.strftime("%Y-%m-%d") + sep + d.strftime("%H:%M:%S")
    if digits:
        text += "." + f"{d.microsecond:06d}"[:digits]
    if tz is dt.timezone.utc:
        text += z
    elif tz is not None:
        offset = d.replace(tzinfo=tz).strftime("%z")
        text += offset[:3] + ":" + offset[3:]
    return text


def datetime_strings() -> st.SearchStrategy[str]:
    canonical = st.builds(rfc3339, DATETIMES, OFFSETS, st.integers(0, 6))
    tricky = st.sampled_from([
        "2023-02-29T00:00:00Z", "2024-02-30T00:00:00Z", "2026-04-31T10:00:00Z", "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T12:60:00Z", "2026-12-03T12:00:60Z",
        "2026-12-03T12:00:00+24:00", "2026-12-03T12:00:00|01:00", "12026-12-03T12:00:00Z", "2026-12-03T12Z",
        "2026-12-03T12:00:00.Z", "2026-12-03T12:00:00+01", "2026-12-03", "x", "2024-02-29T00:00:00Z",
        "2000-02-29T23:59:59+01:00", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00", "2400-02-29T12:00:00",
        "2026-12-03T12:00Z", "2026-12-03T12:00", "2026-12-03T12:00:00+0100", "2026-12-03T12:00:00,5Z"])
    other_spellings = st.one_of(
        st.builds(rfc3339, DATETIMES, OFFSETS, st.integers(0, 6), st.sampled_from(["t", " ", "_"]), st.just("z")),
        st.builds(lambda d: rfc3339(d, None, 7) + "Z", DATETIMES), st.integers(0, 2_000_000_000).map(str))
    return st.one_of(canonical, canonical, tricky, other_spellings)


@st.composite
def datetime_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    tp = draw(st.sampled_from([dt.datetime, AwareDatetime, NaiveDatetime]))
    return tp, st.one_of(datetime_strings(), st.integers(0, 10**9), JUNK)


def date_type() -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    canonical = st.dates(min_value=dt.date(1, 1, 1)).map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
    tricky = st.sampled_from(["2023-02-29", "1900-02-29", "2026-06-31", "0000-01-01", "2026-1-01", "20261203",
                              "2024-02-29", "2000-02-29", "2026-12-03T00:00:00Z"])
    return st.just((dt.date, st.one_of(canonical, tricky, JUNK)))


def time_type() -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    canonical = st.builds(lambda d, tz, n: rfc3339(d, tz, n)[11:], DATETIMES, OFFSETS, st.integers(0, 6))
    tricky = st.sampled_from(["24:00:00", "12:60", "12:00:60", "12", "12:00:00+24:00", "12:00:00+01", "12:00Z",
                              "12:00:00z", "12:00:00+0100", "12:00:00.1234567"])
    return st.just((dt.time, st.one_of(canonical, tricky, JUNK)))


@st.composite
def enum_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    n = next(_names)
    if draw(st.booleans()):
        values = draw(st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=3), min_size=1, max_size=4,
                               unique=True))
        tp: Any = enum.Enum(f"StrEnum{n}", {f"M{i}": v for i, v in enumerate(values)})
        others: st.SearchStrategy[Any] = st.text(alphabet="abcxyz", max_size=3)
    else:
        values = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=4, unique=True))
        tp = enum.IntEnum(f"IntEnum{n}", {f"M{i}": v for i, v in enumerate(values)})
        others = st.integers(-6, 6) | st.sampled_from(values).map(float)
    return tp, st.one_of(st.sampled_from(values), others, JUNK)


@st.composite
def literal_type(draw: Any) -> tuple[Any, st.SearchStrategy[Any]]:
    values = draw(st.lists(st.sampled_from(["a", "b", 0, 1, 2, True, False]), min_size=1, max_size=3, unique=True))
    tp = Literal[tuple(values)]  # type: ignore[valid-type]
    return tp, st.one_of(st.sampled_from(values + ["c", 3, 1.0, 0.0, 2.0, 0, 1, False, True]), JUNK)


def bool_type() -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    return st.just((bool, st.one_of(st.booleans(), st.sampled_from([0, 1, "true", "false", 1.0]), JUNK)))


LEAVES = [int_type(), float_type(), str_type(), bool_type(), datetime_type(), date_type(), time_type(),
          enum_type(), literal_type()]


# --- composites ----------------------------------------------------------------------------------

@st.composite
def answer_type(draw: Any, depth: int = 0) -> tuple[Any, st.SearchStrategy[Any]]:
    kinds = ["leaf"] * 3 + (["optional", "list", "tuple", "dict", "model", "model", "union"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.one_of(LEAVES))
    if kind == "optional":
        tp, values = draw(answer_type(depth + 1))
        return Optional[tp], st.one_of(st.none(), values)
    if kind == "union":
        (a, va), (b, vb) = draw(answer_type(depth + 1)), draw(answer_type(depth + 1))
        return Union[a, b], st.one_of(va, vb)
    if kind == "list":
        tp, values = draw(answer_type(depth + 1))
        kw: dict[str, Any] = {}
        if draw(st.booleans()):
            kw = {"min_length": draw(st.integers(0, 2)), "max_length": draw(st.integers(2, 4))}
        return (Annotated[list[tp], Field(**kw)] if kw else list[tp]), st.one_of(st.lists(values, max_size=5), JUNK)
    if kind == "tuple":
        members = draw(st.lists(answer_type(depth + 1), min_size=1, max_size=3))
        tp = Tuple[tuple(m[0] for m in members)]  # type: ignore[misc]
        right = st.tuples(*(m[1] for m in members)).map(list)
        wrong = st.one_of(st.tuples(*(m[1] for m in members[:-1])).map(list),
                          st.tuples(*(m[1] for m in members), JUNK).map(list))
        return tp, st.one_of(right, right, wrong, JUNK)
    if kind == "dict":
        tp, values = draw(answer_type(depth + 1))
        return dict[str, tp], st.one_of(st.dictionaries(st.text(alphabet="kv", max_size=2), values, max_size=3), JUNK)
    # a nested pydantic model: fields required, or Optional with a default
    fields = draw(st.lists(answer_type(depth + 1), min_size=1, max_size=4))
    spec: dict[str, Any] = {}
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for i, (ftp, fvalues) in enumerate(fields):
        if draw(st.integers(0, 3)) == 0:
            spec[f"f{i}"] = (Optional[ftp], None)
            strategies[f"f{i}"] = st.one_of(st.none(), fvalues)
        else:
            spec[f"f{i}"] = (ftp, ...)
            strategies[f"f{i}"] = fvalues
    model = create_model(f"Model{next(_names)}", **spec)

    @st.composite
    def objects(draw2: Any) -> dict[str, Any]:
        obj = {name: draw2(strategy) for name, strategy in strategies.items()
               if draw2(st.integers(0, 9)) != 0}  # a field left out now and then (required → invalid)
        if draw2(st.integers(0, 5)) == 0:
            obj["extra"] = draw2(st.integers())
        return obj

    return model, st.one_of(objects(), objects(), objects(), JUNK)


# --- the property ----------------------------------------------------------------------------------

def cpp_accepts(schema_text: str, answer_text: str) -> bool:
    return _core.validate_against_schema(schema_text, answer_text) is None


def pydantic_accepts(tp: Any, answer_text: str) -> bool:
    try:
        validate_answer(tp, answer_text)
        return True
    except ValidationError:
        return False


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_the_cpp_validator_and_pydantic_accept_the_same_answers(data: st.DataObject) -> None:
    tp, values = data.draw(answer_type())
    schema_text = json.dumps(answer_schema(tp))
    for _ in range(8):
        answer = json.dumps(data.draw(values))
        cpp, pyd = cpp_accepts(schema_text, answer), pydantic_accepts(tp, answer)
        event(f"C++ {'accepts' if cpp else 'refuses'}, pydantic {'accepts' if pyd else 'refuses'}")
        if cpp:
            assert pyd, f"C++ accepts what pydantic refuses: {answer} for {tp!r}\nschema: {schema_text}"
        elif is_exact(json.loads(answer)):
            assert not pyd, f"pydantic accepts what C++ refuses: {answer} for {tp!r}\nschema: {schema_text}"


@pytest.mark.parametrize("tp, good, bad", [
    (dt.datetime, ["2024-02-29T12:00:00Z", "2026-12-03T12:00:00", "2026-12-03T12:00:00.123456+05:30"],
     ["2023-02-29T12:00:00Z", "2026-12-03T12:00:60Z", "0000-01-01T00:00:00Z"]),
    (AwareDatetime, ["2026-12-03T12:00:00Z"], ["2026-12-03T12:00:00"]),
    (NaiveDatetime, ["2026-12-03T12:00:00"], ["2026-12-03T12:00:00Z"]),
    (dt.date, ["2000-02-29", "0001-01-01"], ["1900-02-29", "2026-04-31"]),
    (Tuple[int, str], [[1, "a"]], [[1], [1, "a", 2], ["a", 1]]),
    (Literal[1], [1, 1.0, True], [2, "1", False]),
])
def test_examples_agree(tp: Any, good: list[Any], bad: list[Any]) -> None:
    schema_text = json.dumps(answer_schema(tp))
    for v in good:
        assert cpp_accepts(schema_text, json.dumps(v)) and pydantic_accepts(tp, json.dumps(v)), v
    for v in bad:
        assert not cpp_accepts(schema_text, json.dumps(v)) and not pydantic_accepts(tp, json.dumps(v)), v

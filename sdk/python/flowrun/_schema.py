"""Wait-answer schemas: pydantic's JSON Schema translated to what the C++ validator reads.

The C++ runtime and the controller validate an answer with valijson 1.0 parsing
**draft 7** (runtime-lib/src/schema_validator.cc: ``SchemaParser()`` defaults to
``kDraft7``); pydantic 2 emits 2020-12-style schemas. Three entry points:

``to_validator_schema(pydantic_schema) -> dict``
    Translates a pydantic JSON Schema (``TypeAdapter(T).json_schema()``) to draft 7:
    ``$defs`` → ``definitions`` (and every ``$ref``), ``prefixItems`` → ``items``
    array + ``additionalItems``, ``$ref`` with validating siblings → ``allOf``;
    ``format: date-time|date|time`` → a ``pattern`` (valijson's own format check
    accepts Feb 29 of any year, second 60 and year 0, which pydantic refuses). It
    raises ``UnsupportedAnswerSchema`` naming the JSON pointer of anything the
    two validators would judge differently: ``pattern``/``patternProperties``
    (ECMAScript std::regex vs Rust regex), ``uniqueItems`` (pydantic's sets drop
    duplicates instead of refusing them), a non-integer ``multipleOf`` (float
    remainders), formats other than the three above (email, uri, uuid, ...:
    valijson ignores unknown formats), and keywords it does not know.

``answer_schema(tp) -> dict``
    The schema of answer type ``tp``: pydantic's, generated with a generator that
    also refuses what a JSON Schema cannot carry at all (custom validators —
    ``field_validator``, ``AfterValidator``, ... —, bounds on dates, dict keys that
    are not strings) and records whether a datetime/time must be timezone-aware or
    naive; then translated. Prefer it to ``to_validator_schema(...json_schema())``.

``validate_answer(tp, answer_json)``
    pydantic's validation of an answer the C++ validator accepted:
    ``validate_json(strict=True)``.

The agreement, proven by tests/test_schema_agreement.py (hypothesis, generated
models and answers): for every answer JSON, the C++ validator accepts it iff
``validate_answer`` does — except in two places where the C++ side is the
stricter one, so an answer it accepts is always accepted by pydantic, never the
reverse: (1) integers outside [-2^63, 2^64) (nlohmann's range) and (2) dates and
times: C++ accepts RFC 3339 (``2026-12-03T12:00:00Z``, ``2026-12-03``,
``12:00:00+01:00``; fraction 1-6 digits; offset required for aware, forbidden for
naive types) while pydantic also takes ``t``/``_``/space separators, ``,``
fractions, ``+0100`` offsets and unix timestamps. Without ``answer_schema``'s
timezone hint a datetime requires an offset (the safe side for
``AwareDatetime``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .errors import UsageError

__all__ = ["UnsupportedAnswerSchema", "answer_schema", "to_validator_schema", "validate_answer"]

_TZ_HINT = "x-flowrun-tz"  # "aware" | "naive" | "any": set by answer_schema's generator


class UnsupportedAnswerSchema(UsageError):
    """The answer type uses a construct the C++ validator and pydantic would judge differently."""


# --- RFC 3339 patterns (ECMAScript syntax: std::regex in valijson) ---------------------------

# YYYY-MM-DD with the Gregorian calendar's month lengths and leap years; year 0000 excluded
# (Python's datetime starts at year 1).
_DATE = (r"(?!0000)(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
         r"|02-(?:0[1-9]|1\d|2[0-8]))|(?:\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
         r"-02-29)")
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
_TZ_SUFFIX = {"aware": _OFFSET, "naive": "", "any": _OFFSET + "?"}


def _pattern_for(fmt: str, tz: str) -> str:
    suffix = _TZ_SUFFIX[tz]
    if fmt == "date":
        return f"^{_DATE}$"
    if fmt == "time":
        return f"^{_TIME}{suffix}$"
    return f"^{_DATE}T{_TIME}{suffix}$"


# --- translation -----------------------------------------------------------------------------

# Keywords passed through (draft 7 means the same as pydantic), and annotations kept as they are.
_VALIDATION = {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "required"}
_ANNOTATIONS = {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
_DROPPED = {"discriminator"}  # OpenAPI's tag mapping; the oneOf/const branches carry the check
_REFUSED = {
    "pattern": "a regular expression (pydantic's Rust regex and the C++ std::regex differ)",
    "patternProperties": "regular-expression property names (pydantic's Rust regex and the C++ std::regex differ)",
    "uniqueItems": "a set (pydantic removes duplicates, the C++ validator refuses them): use a list",
    "propertyNames": "constrained dict keys",
    "dependentRequired": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "dependentSchemas": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "unevaluatedProperties": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "unevaluatedItems": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "$dynamicRef": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "$anchor": "a 2020-12 keyword the C++ validator (draft 7) does not know",
    "contains": "a 'contains' constraint",
    "if": "a conditional schema",
    "contentEncoding": "encoded content (bytes)",
    "contentMediaType": "encoded content",
}


def _refuse(pointer: str, what: str) -> UnsupportedAnswerSchema:
    return UnsupportedAnswerSchema(
        f"wait answer schema: {what} at {pointer or '/'} cannot be validated the same way by the C++ validator and "
        "pydantic; use a simpler type there (or pass a JSON Schema dict as wait(schema=...) and validate it yourself)")


def to_validator_schema(pydantic_schema: dict[str, Any]) -> dict[str, Any]:
    """The draft-7 schema the C++ validator reads for `pydantic_schema`; UnsupportedAnswerSchema if none agrees."""
    if not isinstance(pydantic_schema, dict):
        raise TypeError(f"to_validator_schema: expected a JSON Schema dict, got {type(pydantic_schema).__name__}")
    root = copy.deepcopy(pydantic_schema)
    defs = root.pop("$defs", None)
    root.pop("$schema", None)
    out = _node(root, "")
    if defs is not None:
        if not isinstance(defs, dict):
            raise _refuse("/$defs", "a non-object $defs")
        out["definitions"] = {name: _node(sub, f"/$defs/{name}") for name, sub in defs.items()}
    out["$schema"] = "http://json-schema.org/draft-07/schema#"
    return out


def _node(s: Any, ptr: str) -> Any:
    if isinstance(s, bool):
        return s
    if not isinstance(s, dict):
        raise _refuse(ptr, f"a schema that is a {type(s).__name__}")
    out: dict[str, Any] = {}
    tz = s.get(_TZ_HINT, "aware")
    for key, value in s.items():
        here = f"{ptr}/{key}"
        if key in _REFUSED:
            raise _refuse(here, _REFUSED[key])
        if key in _VALIDATION or key in _ANNOTATIONS:
            out[key] = value
        elif key in _DROPPED or key == _TZ_HINT:
            continue
        elif key == "$ref":
            if not isinstance(value, str) or not value.startswith("#/$defs/"):
                raise _refuse(here, f"the reference {value!r} (only local #/$defs/... references)")
            out[key] = "#/definitions/" + value[len("#/$defs/"):]
        elif key == "$defs":
            raise _refuse(here, "nested $defs")
        elif key == "properties":
            out[key] = {name: _node(sub, f"{here}/{name}") for name, sub in value.items()}
        elif key == "additionalProperties":
            out[key] = _node(value, here)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [_node(sub, f"{here}/{i}") for i, sub in enumerate(value)]
        elif key == "not":
            out[key] = _node(value, here)
        elif key == "prefixItems":
            out["items"] = [_node(sub, f"{here}/{i}") for i, sub in enumerate(value)]
            rest = s.get("items")
            out["additionalItems"] = _node(rest, f"{ptr}/items") if rest is not None else False
        elif key == "items":
            if "prefixItems" not in s:
                out[key] = _node(value, here)
        elif key == "multipleOf":
            if not (isinstance(value, int) and not isinstance(value, bool)) or s.get("type") != "integer":
                raise _refuse(here, "a multipleOf on a non-integer (float remainders differ)")
            out[key] = value
        elif key == "format":
            if value not in ("date-time", "date", "time"):
                raise _refuse(here, f"the string format {value!r} (the C++ validator does not check it)")
            out["pattern"] = _pattern_for(value, tz)
        else:
            raise _refuse(here, f"the keyword {key!r}")
    _equal_numbers_and_booleans(out)
    if "$ref" in out:
        sibling_checks = {k: v for k, v in out.items() if k != "$ref" and k not in _ANNOTATIONS}
        ref = {"$ref": out.pop("$ref")}
        if sibling_checks:  # draft 7 ignores a $ref's siblings: keep them as a conjunction
            for k in sibling_checks:
                out.pop(k)
            out["allOf"] = [ref, sibling_checks]
        else:
            out.update(ref)
            for k in list(out):
                if k != "$ref":
                    del out[k]  # annotations beside a $ref mean nothing in draft 7
    return out


def _equal_numbers_and_booleans(out: dict[str, Any]) -> None:
    """Literal and Enum members are looked up by Python equality: 1 == 1.0 == True, 0 == 0.0 == False.

    pydantic (strict too) therefore takes 1.0 and true for Literal[1] or an IntEnum member 1, and 1 for
    Literal[True]; valijson's enum compares numbers by value (1.0 equals 1) but never a boolean with a
    number. So the booleans equal to an integer member and the integers equal to a boolean member are
    listed too, and the type check that would refuse them (or 2.0 for 2) goes.
    """
    values = out.get("enum") if "enum" in out else ([out["const"]] if "const" in out else None)
    if not isinstance(values, list):
        return
    extra: list[Any] = []
    for v in values:
        if isinstance(v, bool):
            twin: Any = int(v)
        elif isinstance(v, (int, float)) and v in (0, 1):
            twin = bool(v)
        else:
            continue
        if not any(type(w) is type(twin) and w == twin for w in values + extra):
            extra.append(twin)
    if not all(isinstance(v, (int, float)) for v in values) and not extra:
        return  # strings (and mixed members without a numeric twin): the enum stands as it is
    out.pop("const", None)
    out["enum"] = values + extra
    if out.get("type") in ("integer", "number", "boolean"):
        del out["type"]  # the members decide; "integer" would refuse 2.0, which pydantic takes for 2


# --- from a type -------------------------------------------------------------------------------

class _AnswerSchemaGenerator(GenerateJsonSchema):
    """pydantic's generator, refusing validators a JSON Schema cannot carry, with timezone hints."""

    def _no_bounds(self, schema: Any, what: str) -> None:
        for bound in ("gt", "ge", "lt", "le"):
            if schema.get(bound) is not None:
                raise UnsupportedAnswerSchema(f"wait answer schema: a bound ({bound}) on a {what} cannot be "
                                              "checked by the C++ validator")

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        self._no_bounds(schema, "datetime")
        out = super().datetime_schema(schema)
        return {**out, _TZ_HINT: _tz(schema.get("tz_constraint"))}

    def time_schema(self, schema: core_schema.TimeSchema) -> JsonSchemaValue:
        self._no_bounds(schema, "time")
        out = super().time_schema(schema)
        return {**out, _TZ_HINT: _tz(schema.get("tz_constraint"))}

    def date_schema(self, schema: core_schema.DateSchema) -> JsonSchemaValue:
        self._no_bounds(schema, "date")
        return super().date_schema(schema)

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        keys = schema.get("keys_schema")
        if keys is not None and keys.get("type") not in ("str", "any"):
            raise UnsupportedAnswerSchema("wait answer schema: dict keys that are not strings cannot be checked by "
                                          "the C++ validator (JSON object keys are strings)")
        return super().dict_schema(schema)

    def _custom(self, schema: Any) -> JsonSchemaValue:
        name = getattr(schema.get("function", {}).get("function"), "__qualname__", "a custom validator")
        raise UnsupportedAnswerSchema(f"wait answer schema: the custom validator {name} cannot be checked by the "
                                      "C++ validator, so an answer it accepts could fail in Python; validate after "
                                      "wait() returns instead")

    function_after_schema = _custom  # type: ignore[assignment]
    function_before_schema = _custom  # type: ignore[assignment]
    function_wrap_schema = _custom  # type: ignore[assignment]
    function_plain_schema = _custom  # type: ignore[assignment]


def _tz(constraint: Any) -> str:
    if constraint == "aware" or isinstance(constraint, int):
        return "aware"
    if constraint == "naive":
        return "naive"
    return "any"


def answer_schema(tp: Any) -> dict[str, Any]:
    """The C++ validator's schema for answers of type `tp` (see the module docstring)."""
    return to_validator_schema(TypeAdapter(tp).json_schema(schema_generator=_AnswerSchemaGenerator))


def validate_answer(tp: Any, answer_json: str | bytes) -> Any:
    """The `tp` value of an answer (pydantic strict JSON mode: what the schema's agreement is proven for)."""
    return TypeAdapter(tp).validate_json(answer_json, strict=True)


def schema_json(tp: Any) -> str:
    """answer_schema(tp) as JSON text (what the runtime stores with the wait)."""
    return json.dumps(answer_schema(tp), sort_keys=True)

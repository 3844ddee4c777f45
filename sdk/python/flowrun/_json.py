"""Values ↔ JSON text, typed by annotations (pydantic ``TypeAdapter``).

JSON only: never pickle, never stored type names. A value is turned into JSON
by the adapter of the declared type (or, without an annotation, by pydantic's
plain JSON mode) and read back by the same adapter, so a live call and a
resumed one give the flow the same value. A value JSON cannot carry raises
``UsageError`` pointing to artifacts.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Callable

import pydantic_core
from pydantic import TypeAdapter

from .errors import UsageError

_ANY = inspect.Signature.empty


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(Any if tp is _ANY or tp is None.__class__ else tp)


def adapter(tp: Any) -> TypeAdapter[Any]:
    """The (cached) TypeAdapter of `tp`; `inspect.Signature.empty` means Any."""
    try:
        return _adapter(tp)
    except TypeError:  # unhashable annotation (rare): not cached
        return TypeAdapter(Any if tp is _ANY else tp)


def dumps(value: Any, tp: Any, what: "str | Callable[[], str]") -> str:
    """JSON text of `value` as type `tp`; UsageError when JSON cannot carry it.

    `what` names the value in the error; a callable is called only then (the hot path builds no text).
    """
    try:
        return adapter(tp).dump_json(value).decode()
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as e:
        if callable(what):
            what = what()
        raise UsageError(
            f"{what} is not JSON-serializable as {_type_name(tp)} ({type(value).__name__}): {e}. "
            "Checkpoint outputs are stored as JSON; store binary or large data with "
            "flowrun.save_artifact() and return a reference to it"
        ) from None


def loads(text: str, tp: Any) -> Any:
    """The value of type `tp` that JSON `text` holds."""
    return adapter(tp).validate_json(text)


def to_jsonable(value: Any) -> tuple[Any, bool]:
    """(JSON-able form of an argument, True) or (its type name, False) when JSON cannot carry it."""
    try:
        data = adapter(Any).dump_python(value, mode="json")  # cached: building a TypeAdapter costs ~40 µs
        json.dumps(data)
        return data, True
    except Exception:
        return f"<{type(value).__module__}.{type(value).__qualname__}>", False


def argument_json(value: Any) -> tuple[str, bool]:
    """(JSON text of an argument, True) or (the JSON text of its type name, False) when JSON cannot carry it.

    One serialization (the fingerprint hot path): the same JSON as
    ``to_jsonable`` followed by a dump.
    """
    try:
        return adapter(Any).dump_json(value).decode(), True
    except Exception:
        return json.dumps(f"<{type(value).__module__}.{type(value).__qualname__}>"), False


def _type_name(tp: Any) -> str:
    if tp is _ANY:
        return "an unannotated value"
    return getattr(tp, "__name__", None) or repr(tp)

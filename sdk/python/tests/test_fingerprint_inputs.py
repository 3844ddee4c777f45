"""A checkpoint's fingerprint inputs: the hand-bound fast path gives exactly what ``inspect`` binding gives.

The SDK binds a signature of plain parameters by hand (the hot path of every
call); whatever the call's shape, the fingerprint the engine computes must be
the one of ``{"function": qualname, "args": signature.bind + apply_defaults}``
— the form every stored row was fingerprinted with — and a call the signature
refuses must raise the same TypeError as calling the function would.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any, Optional

import pytest
from pydantic import TypeAdapter

from flowrun import _core, checkpoint


class _Rt:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn_once(self, message: str) -> None:
        self.warnings.append(message)


@dataclasses.dataclass
class Point:
    x: int
    y: int


def plain(topic: str, n: int = 3, tags: Optional[list[str]] = None) -> str:
    return topic


def with_star(topic: str, *more: str, **extra: Any) -> str:
    return topic


def reference(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    # What the SDK did before the fast path: pydantic's JSON mode per argument.
    values = {k: TypeAdapter(Any).dump_python(v, mode="json") for k, v in bound.arguments.items()}
    return json.dumps({"function": f"{fn.__module__}.{fn.__qualname__}", "args": values})


def fp(text: Optional[str]) -> str:
    return _core.checkpoint_fingerprint("step", "c", text)


CALLS = [
    ((), {"topic": "llamas"}),
    (("llamas",), {}),
    (("llamas", 5), {}),
    (("llamas",), {"tags": ["a", "b"]}),
    ((), {"n": 1, "topic": "x"}),
    (("llamas", 2, ["t"]), {}),
    (("ünïcode \"quoted\"",), {"n": -1}),
]


@pytest.mark.parametrize("args,kwargs", CALLS)
def test_plain_signature_binds_like_inspect(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    spec = checkpoint(plain).__flowrun_checkpoint__
    inputs, digest = spec.inputs_json(_Rt(), args, kwargs)
    assert fp(inputs) == fp(reference(plain, args, kwargs))
    assert json.loads(digest) == json.loads(reference(plain, args, kwargs))["args"]


@pytest.mark.parametrize("args,kwargs", [(("a", "b", "c"), {"k": Point(1, 2)}), (("a",), {})])
def test_other_signatures_go_through_inspect(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    spec = checkpoint(with_star).__flowrun_checkpoint__
    inputs, _ = spec.inputs_json(_Rt(), args, kwargs)
    assert fp(inputs) == fp(reference(with_star, args, kwargs))


@pytest.mark.parametrize("args,kwargs", [((), {}), (("a",), {"topic": "b"}), (("a",), {"nope": 1}),
                                         (("a", 1, None, "extra"), {})])
def test_a_call_the_signature_refuses_raises_type_error(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    spec = checkpoint(plain).__flowrun_checkpoint__
    with pytest.raises(TypeError):
        spec.inputs_json(_Rt(), args, kwargs)


def test_an_argument_json_cannot_carry_counts_by_its_type_name_with_a_warning() -> None:
    spec = checkpoint(plain).__flowrun_checkpoint__
    rt = _Rt()
    inputs, _ = spec.inputs_json(rt, (object(),), {})
    assert json.loads(inputs)["args"]["topic"] == "<builtins.object>"
    assert rt.warnings and "'topic' is not JSON" in rt.warnings[0]


class Researcher:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def search(self, topic: str, n: int = 2) -> str:
        return topic

    @classmethod
    def build(cls, topic: str) -> str:
        return topic


def test_self_and_cls_are_not_part_of_the_fingerprint() -> None:
    method = checkpoint(Researcher.search).__flowrun_checkpoint__
    a, digest = method.inputs_json(_Rt(), (Researcher("one"), "tides"), {})
    b, _ = method.inputs_json(_Rt(), (Researcher("two"), "tides"), {})
    assert a == b and json.loads(a) == {"function": f"{__name__}.Researcher.search",
                                        "args": {"topic": "tides", "n": 2}}
    assert json.loads(digest) == {"topic": "tides", "n": 2}
    other, _ = method.inputs_json(_Rt(), (Researcher("one"), "waves"), {})
    assert fp(other) != fp(a)  # the arguments still count
    klass = checkpoint(Researcher.build.__func__).__flowrun_checkpoint__
    c, _ = klass.inputs_json(_Rt(), (Researcher, "tides"), {})
    assert json.loads(c)["args"] == {"topic": "tides"}


def test_inputs_none_opts_out_and_a_projection_is_used_verbatim() -> None:
    assert checkpoint(inputs=None)(plain).__flowrun_checkpoint__.inputs_json(_Rt(), ("x",), {}) == (None, None)
    spec = checkpoint(inputs=lambda topic, n=3, tags=None: {"topic": topic.lower()})(plain).__flowrun_checkpoint__
    a, digest = spec.inputs_json(_Rt(), ("Tides",), {"n": 9})
    b, _ = spec.inputs_json(_Rt(), ("TIDES",), {"n": 1})
    assert json.loads(a) == {"topic": "tides"} and a == b and digest is None
    # Exactly what a C++ checkpoint with CheckpointOptions::inputs = {"topic": "tides"} fingerprints.
    assert fp(a) == _core.checkpoint_fingerprint("step", "c", json.dumps({"topic": "tides"}))

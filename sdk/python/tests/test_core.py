"""The binding's pure functions: the C++ validator, fingerprints, prices, exit codes."""

from __future__ import annotations

import json

import pytest

import flowrun
from flowrun import _core
from flowrun._recorder import llm_recorder


def test_validate_against_schema_is_the_runtime_validator() -> None:
    schema = json.dumps({"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]})
    assert _core.validate_against_schema(schema, '{"approved": true}') is None
    reason = _core.validate_against_schema(schema, '{"approved": 1}')
    assert reason is not None and "approved" in reason
    assert _core.validate_against_schema(schema, "{}") is not None
    with pytest.raises(ValueError, match="not valid JSON"):
        _core.validate_against_schema(schema, "{nope")


@pytest.mark.parametrize("number", ["1e309", "-1e309", "1E400", "[1, 2e308]"])
def test_validate_against_schema_refuses_unrepresentable_numbers_with_value_error(number: str) -> None:
    # JSON text allows any magnitude; a double cannot hold 1e309. Bad input: ValueError, not RuntimeError.
    with pytest.raises(ValueError, match="outside the range of a double") as caught:
        _core.validate_against_schema('{"type": ["number", "array"]}', number)
    assert type(caught.value) is ValueError and "value" in str(caught.value)
    with pytest.raises(ValueError, match="schema holds a number outside the range of a double"):
        _core.validate_against_schema('{"type": "number", "maximum": 1e309}', "1")
    assert _core.validate_against_schema('{"type": "number"}', "1.7976931348623157e308") is None


def test_validate_against_schema_refuses_an_unusable_pattern_with_value_error() -> None:
    with pytest.raises(ValueError, match="schema cannot be evaluated") as caught:
        _core.validate_against_schema('{"type": "string", "pattern": "["}', '"a"')
    assert type(caught.value) is ValueError


def test_fingerprint_is_canonical_and_kind_sensitive() -> None:
    a = _core.checkpoint_fingerprint("step", "research", '{"b": 1, "a": [1, 2]}')
    b = _core.checkpoint_fingerprint("step", "research", '{"a": [1, 2], "b": 1}')
    assert a == b and a.startswith("v1:")
    assert a != _core.checkpoint_fingerprint("wait", "research", '{"b": 1, "a": [1, 2]}')
    assert a != _core.checkpoint_fingerprint("step", "research", None)
    with pytest.raises(ValueError):
        _core.checkpoint_fingerprint("nope", "x", None)


def test_price_table_prices_like_the_runtime() -> None:
    t = _core.PriceTable.parse("models:\n  gpt-4o-mini: {input: 0.15, output: 0.60, cached_input: 0.075}\n")
    cost, source = t.price("gpt-4o-mini", 1_000_000, 1_000_000)
    assert source == "price-table:gpt-4o-mini" and cost == pytest.approx(0.75)
    assert t.price("unknown-model", 10, 10) == (None, "unknown")
    assert t.price("unknown-model", 10, 10, cost_usd=0.5) == (0.5, "reported")
    with pytest.raises(ValueError):
        _core.PriceTable.parse("models: [", "bad.yaml")


def test_exit_codes_are_the_cpp_agent_codes() -> None:
    # runtime-lib/include/flowrun/outcome.h
    assert (_core.EXIT_OK, _core.EXIT_FLOW_FAILED, _core.EXIT_CONFIG_ERROR, _core.EXIT_DATABASE_UNAVAILABLE,
            _core.EXIT_FENCED, _core.EXIT_DIVERGENCE) == (0, 1, 2, 3, 4, 5)


def test_outside_a_flow_there_is_no_recorder_and_runtime_calls_refuse() -> None:
    assert llm_recorder() is None
    with pytest.raises(flowrun.UsageError, match="running flow"):
        flowrun.current()

    @flowrun.checkpoint
    def f() -> int:
        return 1

    with pytest.raises(flowrun.UsageError, match="running flow"):
        f()


def test_checkpoint_decorates_with_and_without_options() -> None:
    @flowrun.checkpoint
    def bare(x: int) -> int:
        return x

    @flowrun.checkpoint(retries=2, name="named", on_divergence="rerun")
    async def opts(x: int) -> int:
        return x

    assert bare.__flowrun_checkpoint__.name.endswith("bare")
    spec = opts.__flowrun_checkpoint__
    assert (spec.name, spec.max_tries, spec.is_async) == ("named", 3, True)
    with pytest.raises(ValueError):
        flowrun.checkpoint(on_divergence="sometimes")(lambda: 1)

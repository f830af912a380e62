"""The fast RFC 8785 encoder (node.protocol.jcs) and the log's field-by-field body encoder
write exactly what the ``rfc8785`` package writes, and hand every value outside their
subset to it (so its result, or its refusal, is what the caller gets)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.protocol import jcs
from node.store import log

# Any text, lone surrogates included (hypothesis leaves them out by default): they must
# be refused, never written.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
KEYS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["a", "b", "é", "\ue000", "\uffff", "😀", "\U00010000", "𝄞x", ""]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(),  # also beyond the safe range: refused by both
    st.floats(allow_nan=True, allow_infinity=True),
    ANY_TEXT,
    st.sampled_from(['"', "\\", "\x00\x1f\x7f", "\b\f\n\r\t", "\u2028\u2029", "/<>&'"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=5),
    ),
    max_leaves=25,
)


def outcome(fn: Any, value: Any) -> tuple[str, Any]:
    try:
        return ("ok", fn(value))
    except (ValueError, TypeError) as e:
        return ("refused", type(e))


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(VALUES)
def test_fast_encoder_equals_rfc8785(value: Any) -> None:
    assert outcome(jcs.canonical, value) == outcome(rfc8785.dumps, value)


@pytest.mark.parametrize(
    "value",
    [
        1.5,  # floats: ECMAScript formatting, not the C encoder's repr
        {"x": [1, 2.0]},
        2**53,  # beyond the safe integer range
        {"\U0001f600": 1, "\uffff": 2},  # UTF-16 order differs from code-point order
        {1: "non-text key"},
        "\ud800",  # a lone surrogate
        {"a": object()},
        {"a": {"b": ["\udfff"]}},
    ],
)
def test_values_outside_the_subset_go_to_rfc8785(
    value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = rfc8785.dumps

    def counting(v: Any) -> bytes:
        calls.append(v)
        return real(v)

    monkeypatch.setattr(rfc8785, "dumps", counting)
    assert outcome(jcs.canonical, value) == outcome(real, value)
    assert calls == [value]


def test_utf16_key_order_is_kept() -> None:
    # The case code-point sorting gets wrong: U+1F600 is D83D DE00 in UTF-16, below U+FFFF.
    assert jcs.canonical({"\U0001f600": 1, "\uffff": 2}) == ('{"😀":1,"\uffff":2}'.encode())


def test_plain_values_do_not_touch_rfc8785(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(v: Any) -> bytes:
        raise AssertionError("slow path taken")

    monkeypatch.setattr(rfc8785, "dumps", refuse)
    value = {"b": [None, True, -(2**53) + 1], "a": {"é": 'x\n"\\'}, "": ()}
    assert (
        jcs.canonical(value)
        == b'{"":[],"a":{"\xc3\xa9":"x\\n\\"\\\\"},"b":[null,true,-9007199254740991]}'
    )


# --- the log's entry bodies ------------------------------------------------------------

PSEUDONYMS = st.text("0123456789abcdef", min_size=64, max_size=64)
OPT_TEXT = st.one_of(st.none(), ANY_TEXT)
ENTRIES = st.builds(
    log.LogEntry,
    kind=ANY_TEXT.filter(bool),
    trace_id=OPT_TEXT,
    convenant_id=OPT_TEXT,
    convenant_version=st.one_of(st.none(), st.integers(min_value=0, max_value=2**60)),
    purpose=OPT_TEXT,
    actor=OPT_TEXT,
    counterparty=OPT_TEXT,
    subjects=st.lists(PSEUDONYMS, max_size=3).map(tuple),
    outcome=OPT_TEXT,
    reason=OPT_TEXT,
    data=st.dictionaries(KEYS, VALUES, max_size=4),
)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    ENTRIES,
    st.integers(min_value=0, max_value=2**40),
    st.binary(min_size=32, max_size=32),
    ANY_TEXT,
)
def test_log_body_encoder_equals_rfc8785_of_the_body(
    entry: log.LogEntry, seq: int, prev: bytes, node_id: str
) -> None:
    time = "2026-11-23T15:33:14Z"
    expected = outcome(rfc8785.dumps, log._body(entry, seq, prev, time, node_id))
    assert outcome(lambda _: log._canonical_body(entry, seq, prev, time, node_id), None) == (
        expected
    )

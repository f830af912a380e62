"""RFC 8785 (JCS) canonical JSON, fast for the values the protocol signs and logs.

The ``rfc8785`` package is pure Python (≈26 µs for one log entry body, a large share of
every append and of every signed message). For values made only of text, integers in
the IEEE 754 safe range, booleans, null, lists and dicts whose keys lie in the Basic
Multilingual Plane, the standard library's C JSON encoder with sorted keys, no spaces
and no ASCII escaping writes exactly the JCS bytes:

- §3.2.2.2 strings: both escape ``"``, ``\\``, and U+0000..U+001F (``\\b \\t \\n \\f
  \\r`` by name, the rest as ``\\u00xx`` in lower-case hex) and write every other
  character as itself, in UTF-8; a lone surrogate fails the UTF-8 encoding here and
  goes to ``rfc8785``, which refuses it;
- §3.2.2.3 numbers: an integer of at most 2^53 - 1 in magnitude is its decimal digits in
  both; floats (ECMAScript's number formatting) are not in the subset;
- §3.2.3 key order: JCS sorts by UTF-16 code units, Python by code points; the two orders
  agree unless a key has a character beyond U+FFFF (a surrogate pair sorts below
  U+E000..U+FFFF in UTF-16), so such keys are not in the subset.

Anything outside the subset (a float, a key beyond the BMP, a huge integer, a type JSON
does not have) is handed to ``rfc8785`` unchanged, so the result and the errors are
always the package's. tests/test_jcs.py checks equality on generated values.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_SAFE_INT = 2**53 - 1
_BMP_END = "\U00010000"

_encode = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), check_circular=False
).encode
"""check_circular=False: a cycle in a plain value recurses until RecursionError, which
``canonical`` hands to ``rfc8785`` like any other value it will not take."""


def _plain(value: Any) -> bool:
    """True when ``value`` lies in the subset where the stdlib encoder equals JCS."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not (k.isascii() or max(k, default="") < _BMP_END):
                return False
            # Text and null are most values: decided here without a call.
            if v is not None and type(v) is not str and not _plain(v):
                return False
        return True
    if t is str or value is None or t is bool:
        return True
    if t is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if t is list or t is tuple:
        return all(type(v) is str or _plain(v) for v in value)
    return False


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of ``value``.

    Raises what ``rfc8785.dumps`` raises for values JCS cannot represent
    (``rfc8785.CanonicalizationError``, a ``ValueError``).
    """
    if _plain(value):
        try:
            return _encode(value).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            pass  # a lone surrogate or a cycle: let rfc8785 refuse it the way it does
    return rfc8785.dumps(value)

"""Every text field on the wire, with its one bound (docs/protocol.md §2.4).

Each kind of field is one ``Annotated`` type, defined here once and used by every
message model in ``node.protocol``: a node id is a ``NodeId`` wherever it appears, and a
refusal's ``reason`` is a ``ReasonCode`` in every answer. A bound is therefore changed in
one place, and no field of a peer's message can carry more text than its kind allows
(a partner's ``reason`` goes into the asking node's permanent log).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    UrlConstraints,
)

from node.errors import InputError, MalformedMessage
from node.protocol import jws
from node.protocol.models import NODE_ID_PATTERN

# --- identifiers (a pattern bounds their length) ----------------------------------------

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,127}$"
THEME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
FINGERPRINT_PATTERN = r"^[0-9a-f]{64}$"
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"
NONCE_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"  # at least 16 random bytes
B64U_PATTERN = r"^[A-Za-z0-9_-]*$"
SHA256_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # 32 bytes
ELEMENT_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # a 32-byte group element or public key
PROOF_PATTERN = r"^[A-Za-z0-9_-]{86}$"  # 64 bytes: a DLEQ proof or a hit proof

NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]
"""A node id (2–63 characters)."""
ConvenantId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
PurposeId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
CategoryId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Theme = Annotated[str, StringConstraints(pattern=THEME_PATTERN)]
Fingerprint = Annotated[str, StringConstraints(pattern=FINGERPRINT_PATTERN)]
TraceId = Annotated[str, StringConstraints(pattern=TRACE_ID_PATTERN)]
Nonce = Annotated[str, StringConstraints(pattern=NONCE_PATTERN)]

# --- free text a sender chooses -----------------------------------------------------------

MAX_CASE_REF = 128
MAX_USER_NAME = 64
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""A local user name, as created (``vhnode user add``) and as ``requesting_user`` on the
wire: lowercase ASCII letters, digits, '.', '_' and '-', starting with a letter or digit.
ASCII only, so a look-alike (Cyrillic 'а' in "аdmin") cannot pass for another user at a
partner that logs and shows it."""
MAX_ORGANISATION = 200
MAX_TITLE = 300
MAX_DESCRIPTION = 1000
MAX_LEGAL_BASIS = 2000
MAX_REASON = 64
MAX_REASON_DETAIL = 500
MAX_RULE = 64
MAX_WITHDRAWAL_REASON = 500
MAX_DETAIL_TEXT = 4_000


def check_user_name(name: str) -> str:
    """``name`` if it is a valid user name (``USER_NAME_PATTERN``), else InputError that
    names the first character that is not allowed (a look-alike shows as itself)."""
    if re.fullmatch(USER_NAME_PATTERN, name):
        return name
    rule = "1-64 lowercase ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
    bad = next(
        (c for c in name if not (c.isascii() and (c.isdigit() or c.islower() or c in "._-"))),
        None,
    )
    if bad is not None:
        what = unicodedata.name(bad, f"U+{ord(bad):04X}")
        raise InputError(f"user name {name[:80]!r}: {what} ({bad!r}) is not allowed; {rule}")
    raise InputError(f"user name {name[:80]!r}: {rule}")


CaseRef = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CASE_REF)]
UserName = Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
Organisation = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ORGANISATION)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE)]
Description = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DESCRIPTION)]
LegalBasis = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LEGAL_BASIS)]
ReasonCode = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON)]
"""A refusal or unavailability reason code (§8.2); logged by the receiver."""
ReasonDetail = Annotated[str, StringConstraints(max_length=MAX_REASON_DETAIL)]
RuleName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE)]
WithdrawalReason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WITHDRAWAL_REASON)]
DetailText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DETAIL_TEXT)]
MAX_URL = 2048
EndpointUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL)]

# --- base64url data -----------------------------------------------------------------------

MAX_TAG_SET_TAGS = 1 << 22
"""The most tags one tag-set answer may carry in ``added`` or in ``removed`` (§6.5)."""
TAG_BYTES = 16
MAX_TAG_BLOB = -(-MAX_TAG_SET_TAGS * TAG_BYTES * 4 // 3)
MAX_SEALED = 8 * 1024 * 1024
"""Characters of a sealed detail payload (§14.4): 32 categories of detail texts."""


def _strict_b64u_of(size: int) -> AfterValidator:
    """Text that is strict base64url (§2.1) of exactly ``size`` bytes: syntax, checked
    when the message is parsed (§2.4 "syntax first, meaning after"), so a bad value is a
    400 malformed_message whichever member holds it. What the bytes mean (a group
    element, this node's OPRF output) is checked later and refused signed."""

    def check(value: str) -> str:
        try:
            raw = jws.b64u_decode(value)
        except MalformedMessage as e:
            raise ValueError(e.detail) from e
        if len(raw) != size:
            raise ValueError(f"expected base64url of {size} bytes")
        return value

    return AfterValidator(check)


Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN), _strict_b64u_of(32)]
Element = Annotated[str, StringConstraints(pattern=ELEMENT_PATTERN), _strict_b64u_of(32)]
PublicKey = Annotated[str, StringConstraints(pattern=ELEMENT_PATTERN), _strict_b64u_of(32)]
DleqProof = Annotated[str, StringConstraints(pattern=PROOF_PATTERN), _strict_b64u_of(64)]
HitProof = Annotated[str, StringConstraints(pattern=PROOF_PATTERN), _strict_b64u_of(64)]
TagBlob = Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=MAX_TAG_BLOB)]
Sealed = Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=MAX_SEALED)]

# --- how many of a repeated field ----------------------------------------------------------

MAX_ELEMENTS = 1024
MAX_PROOF_HASHES = 64  # a consistency proof of a log of up to 2^64 entries
MAX_CATEGORIES = 32
MAX_HIT_PROOFS = 64
MAX_ENTRIES_PER_CATEGORY = 1024
MAX_PARTIES = 256
MAX_PURPOSES = 64
MAX_THEMES = 64
MAX_CATALOGUE = 256
MAX_DETAIL_RULES = 4096


# --- base64url data as bytes ---------------------------------------------------------------


def _b64u_bytes(max_chars: int) -> BeforeValidator:
    """Wire text to bytes, strictly (unpadded, canonical base64url, no more than
    ``max_chars`` characters); bytes given by this node's own code pass as they are."""

    def decode(value: Any) -> Any:
        if isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            # ValueError, not TypeError: pydantic reports only ValueError as invalid input.
            raise ValueError("expected base64url text")  # noqa: TRY004
        if len(value) > max_chars:
            raise ValueError(f"at most {max_chars} characters of base64url")
        try:
            return jws.b64u_decode(value)
        except MalformedMessage as e:
            raise ValueError(e.detail) from e

    return BeforeValidator(decode)


_AS_TEXT = PlainSerializer(jws.b64u_encode, return_type=str)


def _b64_chars(n: int) -> int:
    return -(-n * 4 // 3)


Bytes32 = Annotated[bytes, _b64u_bytes(43), Field(min_length=32, max_length=32), _AS_TEXT]
"""32 bytes (a group element, a public key, a SHA-256 value), base64url on the wire."""
Bytes64 = Annotated[bytes, _b64u_bytes(86), Field(min_length=64, max_length=64), _AS_TEXT]
"""64 bytes (a DLEQ proof), base64url on the wire."""
TagBytes = Annotated[
    bytes,
    _b64u_bytes(MAX_TAG_BLOB),
    Field(max_length=MAX_TAG_SET_TAGS * TAG_BYTES),
    _AS_TEXT,
]
"""Packed 16-byte tags (§6.5), base64url on the wire."""
SealedBytes = Annotated[bytes, _b64u_bytes(MAX_SEALED), _AS_TEXT]
"""A sealed detail payload (§14.4), base64url on the wire."""

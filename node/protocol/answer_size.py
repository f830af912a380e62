"""How many bytes one partner answer may take on the wire, per message type (§12.1).

A requester reads an answer only up to its bound and stops there: an answer past it is
``invalid`` for that partner (§8.1) without being buffered whole, parsed or verified.
Each bound is the largest answer an honest partner can send for what was asked, with
room for the JWS envelope, the signature and the embedded tree head. Base64url (in the
payload, then again as the JWS payload) makes each byte of data cost at most 16/9 bytes.
"""

from __future__ import annotations

from node.protocol.fields import (
    MAX_CATEGORIES,
    MAX_PROOF_HASHES,
    MAX_SEALED,
    TAG_BYTES,
)

ENVELOPE = 16 * 1024
"""JWS envelope, signature, fixed members, a ≤ 500-character reason detail (escaped),
and the partner's signed tree head."""
PER_ELEMENT = 128
"""One evaluated element: 43 characters and separators, base64url again in the JWS."""
PER_TAG = -(-TAG_BYTES * 16 // 9) + 1
"""One 16-byte tag in ``added`` or ``removed``, encoded twice."""
PER_CATEGORY = 2 * 1024
"""One category's state: id, status, rule, reason, reason detail, retention, roles."""


def evaluate_answer(elements: int) -> int:
    """An evaluate response to a request of ``elements`` blinded elements (§6.3)."""
    return ENVELOPE + PER_ELEMENT * elements


def tag_set_answer(max_tags: int) -> int:
    """A tag-set response whose ``added`` and ``removed`` hold up to ``max_tags`` each."""
    return ENVELOPE + 2 * PER_TAG * max_tags


DETAIL_ANSWER = ENVELOPE + PER_CATEGORY * MAX_CATEGORIES + -(-MAX_SEALED * 4 // 3)
"""A detail response (§14.3.1): the categories and a sealed payload of at most
``MAX_SEALED`` characters."""
HIT_NOTICE_ANSWER = ENVELOPE
"""A hit-notice response (§14.9): fixed members only."""
KEY_PINS_ANSWER = ENVELOPE + 256 * 1024
"""A key-pins response (§9.6): at most 1024 pins of about 200 bytes each."""
HELD_HEAD_ANSWER = ENVELOPE + 8 * 1024
"""A held-head response (§9.7): besides the partner's own head, one head of the requester
(with the restore statement of its epoch, if any)."""
CONSISTENCY_ANSWER = ENVELOPE + PER_ELEMENT * MAX_PROOF_HASHES
"""A consistency response (§9.4): at most 64 hashes."""

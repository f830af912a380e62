"""Signed documents: JWS (RFC 7515) General JSON Serialization over RFC 8785 canonical JSON.

docs/protocol.md §3. Every signed message and document of the protocol is one of these:

    {"payload": B64U(JCS(payload)),
     "signatures": [{"protected": B64U(JCS({"alg": "EdDSA", "kid": FP, "typ": TYP})),
                     "signature": B64U(Ed25519(ASCII(protected "." payload)))}]}

The ``typ`` header gives domain separation: a signature made for one message type never
verifies as another. Signatures are checked over the bytes received, never over a
re-serialised model; the payload must itself be in canonical form, so a document has
exactly one encoding.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import rfc8785

from node.errors import BadSignature, MalformedMessage
from node.protocol import jcs

ALG = "EdDSA"


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Strict unpadded base64url: rejects padding, whitespace and non-alphabet characters."""
    if not isinstance(text, str) or "=" in text:
        raise MalformedMessage("expected unpadded base64url text")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedMessage("invalid base64url") from e
    if b64u_encode(raw) != text:  # non-canonical trailing bits
        raise MalformedMessage("non-canonical base64url")
    return raw


def canonical(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes (``jcs.canonical``: the C encoder where it is
    byte-identical, the ``rfc8785`` package otherwise)."""
    try:
        return jcs.canonical(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise MalformedMessage(f"cannot canonicalise: {e}") from e


def fingerprint(public_key: bytes) -> str:
    """Key fingerprint: lowercase hex SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(public_key).hexdigest()


# Document types whose verifications are remembered: peer cards and convenants are
# re-checked on every request, and verifying is a pure function of the bytes (~60 µs
# each). Messages (requests, responses) are never re-verified, so they are not kept:
# they would only evict the useful entries and hold memory.
_REMEMBERED_TYPS: set[str] = set()


def remember_verifications(typ: str) -> None:
    """Cache signature checks of documents of ``typ`` (called by the module defining it)."""
    _REMEMBERED_TYPS.add(typ)


def _ed25519_check(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


_ed25519_check_remembered = functools.lru_cache(maxsize=4096)(_ed25519_check)


def _protected_header(typ: str, kid: str) -> str:
    return b64u_encode(canonical({"alg": ALG, "kid": kid, "typ": typ}))


def _sign_one(typ: str, payload_b64: str, key: nacl.signing.SigningKey) -> Signature:
    kid = fingerprint(bytes(key.verify_key))
    protected = _protected_header(typ, kid)
    sig = key.sign(f"{protected}.{payload_b64}".encode("ascii")).signature
    return Signature(kid=kid, protected=protected, signature=sig)


@dataclass(frozen=True)
class Signature:
    kid: str
    protected: str
    signature: bytes


@dataclass(frozen=True)
class SignedDocument:
    """A parsed, not yet verified, JWS. ``payload`` is the decoded JSON object."""

    typ: str
    payload_b64: str
    payload: dict[str, Any]
    signatures: tuple[Signature, ...]

    @property
    def payload_bytes(self) -> bytes:
        return b64u_decode(self.payload_b64)

    def digest(self) -> bytes:
        """SHA-256 over the signed payload bytes: how responses point at their request."""
        return hashlib.sha256(self.payload_bytes).digest()

    def kids(self) -> tuple[str, ...]:
        return tuple(s.kid for s in self.signatures)

    def to_json(self) -> dict[str, Any]:
        return {
            "payload": self.payload_b64,
            "signatures": [
                {"protected": s.protected, "signature": b64u_encode(s.signature)}
                for s in self.signatures
            ],
        }

    def verify(self, kid: str, public_key: bytes) -> None:
        """Raise BadSignature unless a signature by ``kid`` verifies under ``public_key``."""
        if fingerprint(public_key) != kid:
            raise BadSignature("key does not match the key id")
        for sig in self.signatures:
            if sig.kid != kid:
                continue
            message = f"{sig.protected}.{self.payload_b64}".encode("ascii")
            check = _ed25519_check_remembered if self.typ in _REMEMBERED_TYPS else _ed25519_check
            if not check(public_key, message, sig.signature):
                raise BadSignature(f"signature by {kid[:16]}… does not verify")
            return
        raise BadSignature(f"no signature by key {kid[:16]}…")

    def verify_by(self, keys: bytes | Mapping[str, bytes], what: str) -> None:
        """Raise BadSignature unless signed by ``keys``: one key, or every key a node has
        had by fingerprint (its own documents across a key rotation, §4.1.1), of which
        the first the document names must verify. ``what`` names the document in errors."""
        if isinstance(keys, bytes):
            self.verify(fingerprint(keys), keys)
            return
        kids = [k for k in self.kids() if k in keys]
        if not kids:
            raise BadSignature(f"{what} is not signed by any key this node has had")
        self.verify(kids[0], keys[kids[0]])

    def with_signature(self, key: nacl.signing.SigningKey) -> SignedDocument:
        """A copy with ``key``'s signature added (replacing an earlier one by the same key)."""
        new = _sign_one(self.typ, self.payload_b64, key)
        kept = tuple(s for s in self.signatures if s.kid != new.kid)
        return SignedDocument(self.typ, self.payload_b64, self.payload, (*kept, new))

    def has_valid_signature(self, kid: str, public_key: bytes) -> bool:
        try:
            self.verify(kid, public_key)
        except BadSignature:
            return False
        return True


def sign(typ: str, payload: Mapping[str, Any], key: nacl.signing.SigningKey) -> SignedDocument:
    """Create a JWS with one signature."""
    return unsigned(typ, payload).with_signature(key)


def unsigned(typ: str, payload: Mapping[str, Any]) -> SignedDocument:
    """A document with no signature yet (a convenant draft)."""
    payload_b64 = b64u_encode(canonical(dict(payload)))
    return SignedDocument(typ=typ, payload_b64=payload_b64, payload=dict(payload), signatures=())


def merge(documents: list[SignedDocument]) -> SignedDocument:
    """Combine the signatures of several copies of the same document (same payload bytes)."""
    if not documents:
        raise MalformedMessage("nothing to merge")
    first = documents[0]
    sigs: dict[str, Signature] = {}
    for doc in documents:
        if doc.payload_b64 != first.payload_b64 or doc.typ != first.typ:
            raise MalformedMessage("documents differ: signatures can only be merged for one text")
        for s in doc.signatures:
            sigs.setdefault(s.kid, s)
    return SignedDocument(first.typ, first.payload_b64, first.payload, tuple(sigs.values()))


def parse(obj: Any, expected_typ: str | None = None) -> SignedDocument:
    """Parse a JWS General JSON object strictly. Does not verify signatures."""
    if not isinstance(obj, Mapping) or set(obj) != {"payload", "signatures"}:
        raise MalformedMessage("expected a JWS object with exactly 'payload' and 'signatures'")
    payload_b64 = obj["payload"]
    raw_sigs = obj["signatures"]
    if not isinstance(payload_b64, str) or not isinstance(raw_sigs, list):
        raise MalformedMessage("JWS 'payload' must be text and 'signatures' a list")
    payload_bytes = b64u_decode(payload_b64)
    try:
        payload = json.loads(payload_bytes)
    except (ValueError, RecursionError) as e:
        raise MalformedMessage("JWS payload is not JSON") from e
    if not isinstance(payload, dict):
        raise MalformedMessage("JWS payload must be a JSON object")
    if canonical(payload) != payload_bytes:
        raise MalformedMessage("JWS payload is not in RFC 8785 canonical form")
    typ: str | None = None
    sigs: list[Signature] = []
    for entry in raw_sigs:
        if not isinstance(entry, Mapping) or set(entry) != {"protected", "signature"}:
            raise MalformedMessage("each signature needs exactly 'protected' and 'signature'")
        protected = entry["protected"]
        if not isinstance(protected, str):
            raise MalformedMessage("'protected' must be text")
        try:
            header = json.loads(b64u_decode(protected))
        except (ValueError, RecursionError) as e:
            raise MalformedMessage("protected header is not JSON") from e
        if (
            not isinstance(header, dict)
            or set(header) != {"alg", "kid", "typ"}
            or header["alg"] != ALG
            or not isinstance(header["kid"], str)
            or not isinstance(header["typ"], str)
        ):
            raise MalformedMessage("protected header must be exactly {alg: EdDSA, kid, typ}")
        if typ is not None and header["typ"] != typ:
            raise MalformedMessage("signatures disagree on typ")
        typ = header["typ"]
        signature = b64u_decode(entry["signature"])
        if len(signature) != 64:
            raise MalformedMessage("Ed25519 signature must be 64 bytes")
        if any(s.kid == header["kid"] for s in sigs):
            raise MalformedMessage("two signatures with the same kid")
        sigs.append(Signature(kid=header["kid"], protected=protected, signature=signature))
    if typ is None:
        # An unsigned draft (a convenant before its first signature) has no header to
        # carry its typ; the caller's model validation checks the payload's own "type".
        typ = expected_typ or ""
    if expected_typ is not None and typ != expected_typ:
        raise MalformedMessage(f"expected a {expected_typ} document, got {typ or 'none'}")
    return SignedDocument(typ=typ, payload_b64=payload_b64, payload=payload, signatures=tuple(sigs))


def parse_bytes(body: bytes, expected_typ: str | None = None) -> SignedDocument:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        # ValueError covers bad JSON, bad UTF-8 and over-long numbers; RecursionError
        # deep nesting. All are a malformed message, never a crash.
        raise MalformedMessage("body is not acceptable JSON") from e
    return parse(obj, expected_typ)

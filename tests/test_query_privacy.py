"""A partner that does not know the person learns nothing about whom was asked.

ggz-test knows nobody; an Interposer in front of it records every request it receives
during a query for a BSN, a person and an address. None of those bytes may hold a value
ggz-test could recompute from a guessed identifier: not the identifier or its parts,
not the subject key, not a plain hash of either, not the unblinded group element
``H(x)``, and not any partner's OPRF output or tag for it. The blinded elements must
also be unlinkable: fresh for every partner and every round.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from node.errors import MalformedMessage
from node.protocol import jws, oprf
from node.protocol.identifiers import parse_identifier, subject_key
from node.protocol.tag_set import tag_from_output
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    Federation,
    Interposer,
    interpose,
    log_entries,
    statuses,
)

BSN = {"kind": "bsn", "bsn": "123456782"}
PERSON = {
    "kind": "person",
    "surname": "Oosterhuis",
    "tussenvoegsel": "van",
    "first_names": "Jacoba Wilhelmina",
    "birth_date": "1987-03-14",
}
ADDRESS = {"kind": "address", "postcode": "4811 AB", "house_number": 12, "addition": "a"}
SUBJECTS = [BSN, PERSON, ADDRESS]
NO_HIT = "ggz-test"

PLAIN_PARTS = [
    "123456782",
    "Oosterhuis",
    "oosterhuis",
    "OOSTERHUIS",
    "Jacoba",
    "jacoba",
    "1987-03-14",
    "14-03-1987",
    "19870314",
    "4811 AB",
    "4811AB",
    "4811ab",
]


def _encodings(raw: bytes) -> list[str]:
    """The ways a byte string could be written into a message."""
    return [
        raw.hex(),
        raw.hex().upper(),
        jws.b64u_encode(raw),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    ]


def _derived_bytes(fed: Federation, text: str) -> list[bytes]:
    """Everything computable from ``text`` without a partner's help, plus what partners
    compute from it with their keys (the outputs and tags the no-hit partner must not
    be able to test)."""
    data = text.encode()
    out = [
        hashlib.new(name, data).digest()
        for name in ("sha256", "sha512", "sha1", "md5", "sha3_256", "blake2b", "blake2s")
    ]
    out.append(oprf.hash_to_group(data))  # the unblinded element H(x)
    for node in fed.nodes.values():
        sk, _ = node.ctx.oprf_key(CONVENANT_ID)
        output = oprf.evaluate(sk, [data])[0]
        out += [output, tag_from_output(output)]
    return out


def _forbidden(fed: Federation) -> tuple[list[str], list[bytes]]:
    texts = list(PLAIN_PARTS)
    raw: list[bytes] = []
    for s in SUBJECTS:
        key = subject_key(parse_identifier(s))
        texts.append(key)
        # the key and its identifier part alone (e.g. "123456782", "4811AB|12|A")
        for text in (key, key.split(":", 1)[1]):
            for digest in _derived_bytes(fed, text):
                raw.append(digest)
                texts += _encodings(digest)
    return texts, raw


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _decoded_values(payload: dict[str, Any]) -> list[bytes]:
    """Every payload string that is base64url, decoded: what the partner can unwrap."""
    out = []
    for s in _strings(payload):
        try:
            out.append(jws.b64u_decode(s))
        except MalformedMessage:
            continue  # not base64url: nothing to unwrap
    return out


def _views(body: bytes) -> list[bytes]:
    """The raw request and everything a partner can decode from it."""
    doc = jws.parse_bytes(body)
    views = [body, doc.payload_bytes]
    views += [jws.b64u_decode(s.protected) for s in doc.signatures]
    views += _decoded_values(doc.payload)
    return views


async def _query_through(fed: Federation) -> tuple[Interposer, dict[str, Any]]:
    fed.register(
        "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [BSN, PERSON]}
    )
    proxy = await interpose(fed, NO_HIT)
    result = await fed.query("vh-test", SUBJECTS)
    assert statuses(result)[NO_HIT] == "no_hit"
    assert statuses(result)["politie-test"] == "hit"
    return proxy, result


def _leaks(body: bytes, texts: list[str], raw: list[bytes]) -> list[str]:
    """What of the forbidden values occurs in ``body`` or anything decoded from it."""
    found = []
    for view in _views(body):
        lowered = view.lower()
        for t in texts:
            # Short words are also looked for in any case ("oosterhuis", "4811ab").
            word = t.isascii() and any(c.isalpha() for c in t) and len(t) < 32
            if t.encode() in view or (word and t.lower().encode() in lowered):
                found.append(t)
        found += [r.hex() for r in raw if r in view]
    return found


async def test_no_hit_partner_receives_nothing_it_can_recompute_from_the_identifier(
    federation: Federation,
) -> None:
    proxy, _ = await _query_through(federation)
    assert {p for p, _ in proxy.requests} >= {EVALUATE_PATH}
    texts, raw = _forbidden(federation)
    for path, body in proxy.requests:
        assert _leaks(body, texts, raw) == [], path


async def test_leak_detector_finds_each_kind_of_leak(federation: Federation) -> None:
    """The check above is not vacuous: requests carrying a derived value are caught."""
    texts, raw = _forbidden(federation)
    key = subject_key(parse_identifier(BSN)).encode()
    sk, _ = federation.nodes["politie-test"].ctx.oprf_key(CONVENANT_ID)
    leaky = {
        "plain-in-case-ref": {"case_ref": "BSN 123456782"},
        "surname-lowercase": {"case_ref": "fam. oosterhuis"},
        "sha256-hex": {"h": hashlib.sha256(key).hexdigest()},
        "unblinded-element": {"e": jws.b64u_encode(oprf.hash_to_group(key))},
        "partner-tag": {"t": jws.b64u_encode(tag_from_output(oprf.evaluate(sk, [key])[0]))},
    }
    signer = federation.nodes["vh-test"].ctx.keys.signing
    for name, payload in leaky.items():
        body = json.dumps(jws.sign("x/v1", payload, signer).to_json()).encode()
        assert _leaks(body, texts, raw), name


async def test_blinded_elements_are_not_the_unblinded_elements(federation: Federation) -> None:
    proxy, _ = await _query_through(federation)
    body = next(b for p, b in proxy.requests if p == EVALUATE_PATH)
    sent = [jws.b64u_decode(e) for e in jws.parse_bytes(body).payload["blinded_elements"]]
    keys = [subject_key(parse_identifier(s)).encode() for s in SUBJECTS]
    assert len(sent) == len(keys)
    assert not {oprf.hash_to_group(k) for k in keys} & set(sent)


async def test_no_hit_partners_log_holds_no_identifier(federation: Federation) -> None:
    await _query_through(federation)
    texts, _ = _forbidden(federation)
    for entry in log_entries(federation.nodes[NO_HIT]):
        text = json.dumps(entry)
        for t in texts:
            assert t not in text, (entry["kind"], t)


def _blinded(proxy: Interposer) -> list[list[str]]:
    return [
        list(jws.parse_bytes(b).payload["blinded_elements"])
        for p, b in proxy.requests
        if p == EVALUATE_PATH
    ]


async def test_same_subject_asked_twice_gives_different_blinded_elements(
    federation: Federation,
) -> None:
    proxy = await interpose(federation, NO_HIT)
    await federation.query("vh-test", [BSN])
    await federation.query("vh-test", [BSN])
    first, second = _blinded(proxy)
    assert first != second
    assert not set(first) & set(second)


async def test_same_subject_twice_in_one_request_gives_different_blinded_elements(
    federation: Federation,
) -> None:
    proxy = await interpose(federation, NO_HIT)
    result = await federation.query("vh-test", [BSN, BSN])
    assert result["subject_count"] == 2
    [elements] = _blinded(proxy)
    assert len(set(elements)) == 2


async def test_different_partners_get_different_blinded_elements_in_one_round(
    federation: Federation,
) -> None:
    ggz = await interpose(federation, "ggz-test")
    om = await interpose(federation, "om-test")
    await federation.query("vh-test", SUBJECTS)
    [to_ggz], [to_om] = _blinded(ggz), _blinded(om)
    assert len(to_ggz) == len(to_om) == len(SUBJECTS)
    assert not set(to_ggz) & set(to_om)

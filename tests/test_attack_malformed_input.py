"""Malformed input on every HTTP endpoint: a clear RFC 9457 error, never a crash, no trace.

Each case sends one bad request to a real node and checks the answer is
``application/problem+json`` with ``type`` = ``https://vhnode.nl/problems/<code>``,
``status`` equal to the HTTP status, a ``title`` and a ``detail``; that no node stored,
logged or published anything (row counts of every stateful table at every node are
unchanged); and that the node's own audit log still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from node.protocol import jws, oprf
from node.protocol.bekendheid import EVALUATE_REQUEST_TYP
from tests.federation import (
    BSN_KEY,
    CONVENANT_ID,
    EVALUATE_PATH,
    JOSE,
    PROBLEM,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    evaluate_request,
    jws_bytes,
    state_counts,
    tag_set_request,
)

PROBLEM_BASE = "https://vhnode.nl/problems/"
TOO_BIG = 1_048_576 + 4096  # the nodes' default http.max_body_bytes is 1 MiB
JAN_BSN = {"kind": "bsn", "bsn": "123456782"}

Body = Callable[[Federation], bytes]


def _json(obj: Any) -> Body:
    return lambda fed: json.dumps(obj).encode()


def _raw(data: bytes) -> Body:
    return lambda fed: data


def _query(**overrides: Any) -> Body:
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": PURPOSE,
        "case_ref": "C-1",
        "subjects": [JAN_BSN],
        **overrides,
    }
    return _json(body)


def _registration(ref: str = "BPS-9", **overrides: Any) -> Body:
    return _json({"ref": ref, "themes": ["veelplegers"], "identifiers": [JAN_BSN], **overrides})


def _signed_non_canonical(fed: Federation) -> bytes:
    """A validly signed evaluate request whose payload bytes are not RFC 8785 canonical."""
    doc = evaluate_request(fed, "vh-test", "politie-test")
    payload_b64 = jws.b64u_encode(json.dumps(doc.payload, indent=1).encode())
    key = fed.nodes["vh-test"].ctx.keys.signing
    protected = jws.b64u_encode(
        jws.canonical(
            {
                "alg": "EdDSA",
                "kid": jws.fingerprint(bytes(key.verify_key)),
                "typ": EVALUATE_REQUEST_TYP,
            }
        )
    )
    signature = key.sign(f"{protected}.{payload_b64}".encode()).signature
    return json.dumps(
        {
            "payload": payload_b64,
            "signatures": [{"protected": protected, "signature": jws.b64u_encode(signature)}],
        }
    ).encode()


def _signed_not_a_request(fed: Federation) -> bytes:
    key = fed.nodes["vh-test"].ctx.keys.signing
    return jws_bytes(jws.sign(EVALUATE_REQUEST_TYP, {"requester": "vh-test"}, key))


def _two_signatures(fed: Federation) -> bytes:
    doc = evaluate_request(fed, "vh-test", "politie-test")
    return jws_bytes(doc.with_signature(fed.nodes["om-test"].ctx.keys.signing))


def _unsigned(fed: Federation) -> bytes:
    obj = evaluate_request(fed, "vh-test", "politie-test").to_json()
    obj["signatures"] = []
    return json.dumps(obj).encode()


def _tag_set_request_to_evaluate(fed: Federation) -> bytes:
    return jws_bytes(tag_set_request(fed, "vh-test", "politie-test"))


def _evaluate_request_to_tag_set(fed: Federation) -> bytes:
    return jws_bytes(evaluate_request(fed, "vh-test", "politie-test"))


def _oversized_jws(fed: Federation) -> bytes:
    doc = evaluate_request(fed, "vh-test", "politie-test")
    obj = doc.to_json()
    obj["padding"] = "A" * TOO_BIG
    return json.dumps(obj).encode()


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str
    status: int
    code: str  # the problem type's last path segment
    body: Body | None = None
    node: str = "politie-test"
    role: str | None = "coordinator"  # whose bearer token; None: no Authorization header
    authorization: str | None = None  # an explicit Authorization header instead
    content_type: str = "application/json"


CASES = [
    # --- peer endpoints: signed JWS bodies ---
    Bad(
        "evaluate-not-json",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _raw(b"this is not {json"),
        content_type=JOSE,
    ),
    Bad("evaluate-empty-body", "POST", EVALUATE_PATH, 400, "malformed_message", _raw(b"")),
    Bad(
        "evaluate-invalid-utf8",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _raw(b'{"payload": "\xff\xfe"}'),
    ),
    Bad(
        "evaluate-json-not-a-jws",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _json({"requester": "vh-test", "blinded_elements": []}),
    ),
    Bad("evaluate-json-array", "POST", EVALUATE_PATH, 400, "malformed_message", _json([1, 2])),
    Bad(
        "evaluate-payload-not-base64url",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _json({"payload": "!!!", "signatures": []}),
    ),
    Bad(
        "evaluate-non-canonical-payload",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _signed_non_canonical,
    ),
    Bad(
        "evaluate-wrong-typ",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _tag_set_request_to_evaluate,
    ),
    Bad(
        "evaluate-payload-not-a-request",
        "POST",
        EVALUATE_PATH,
        400,
        "malformed_message",
        _signed_not_a_request,
    ),
    Bad(
        "evaluate-two-signatures", "POST", EVALUATE_PATH, 400, "malformed_message", _two_signatures
    ),
    Bad("evaluate-unsigned", "POST", EVALUATE_PATH, 400, "malformed_message", _unsigned),
    Bad("evaluate-oversized", "POST", EVALUATE_PATH, 413, "payload_too_large", _oversized_jws),
    Bad("evaluate-wrong-method", "GET", EVALUATE_PATH, 405, "method_not_allowed"),
    Bad("tag-set-not-json", "POST", TAG_SET_PATH, 400, "malformed_message", _raw(b"\x00\x01")),
    Bad(
        "tag-set-json-not-a-jws",
        "POST",
        TAG_SET_PATH,
        400,
        "malformed_message",
        _json({"since_version": 0}),
    ),
    Bad(
        "tag-set-wrong-typ",
        "POST",
        TAG_SET_PATH,
        400,
        "malformed_message",
        _evaluate_request_to_tag_set,
    ),
    Bad("tag-set-oversized", "POST", TAG_SET_PATH, 413, "payload_too_large", _raw(b" " * TOO_BIG)),
    Bad("tag-set-wrong-method", "PUT", TAG_SET_PATH, 405, "method_not_allowed", _json({})),
    Bad("card-wrong-method", "PUT", "/peer/v1/card", 405, "method_not_allowed", _json({})),
    # POST /peer/v1/card takes a peer's announced card (§4.4): anything else is malformed.
    Bad("card-not-a-card", "POST", "/peer/v1/card", 400, "malformed_message", _json({})),
    Bad("healthz-wrong-method", "DELETE", "/healthz", 405, "method_not_allowed"),
    Bad("unknown-peer-route", "POST", "/peer/v1/alles", 404, "not_found", _json({})),
    Bad("unknown-route", "GET", "/admin.php", 404, "not_found"),
    # --- local API: authentication and roles ---
    Bad("node-without-token", "GET", "/api/v1/node", 401, "unauthorized", role=None),
    Bad(
        "node-unknown-token",
        "GET",
        "/api/v1/node",
        401,
        "unauthorized",
        authorization="Bearer vhn_" + "x" * 43,
    ),
    Bad("node-empty-bearer", "GET", "/api/v1/node", 401, "unauthorized", authorization="Bearer "),
    Bad(
        "node-basic-auth",
        "GET",
        "/api/v1/node",
        401,
        "unauthorized",
        authorization="Basic Y29vcmRpbmF0b3I6Z2VoZWlt",
    ),
    Bad(
        "query-with-source-token",
        "POST",
        "/api/v1/bekendheid",
        403,
        "forbidden",
        _query(),
        node="vh-test",
        role="source",
    ),
    Bad(
        "query-with-privacy-officer-token",
        "POST",
        "/api/v1/bekendheid",
        403,
        "forbidden",
        _query(),
        node="vh-test",
        role="privacy_officer",
    ),
    Bad("audit-with-coordinator-token", "GET", "/api/v1/audit/verify", 403, "forbidden"),
    Bad(
        "registration-with-coordinator-token",
        "PUT",
        "/api/v1/registrations/BPS-9",
        403,
        "forbidden",
        _registration(),
    ),
    Bad(
        "delete-registration-without-token",
        "DELETE",
        "/api/v1/registrations/BPS-1",
        401,
        "unauthorized",
        role=None,
    ),
    Bad("unknown-api-route", "GET", "/api/v1/alles", 404, "not_found", role="admin"),
    Bad(
        "api-wrong-method",
        "DELETE",
        "/api/v1/bekendheid",
        405,
        "method_not_allowed",
        node="vh-test",
        role="admin",
    ),
    # --- registrations ---
    Bad(
        "registration-invalid-bsn",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_bsn",
        _registration(identifiers=[{"kind": "bsn", "bsn": "123456789"}]),
        role="source",
    ),
    Bad(
        "registration-bsn-not-nine-digits",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_bsn",
        _registration(identifiers=[{"kind": "bsn", "bsn": "12345"}]),
        role="source",
    ),
    Bad(
        "registration-bad-postcode",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_identifier",
        _registration(identifiers=[{"kind": "address", "postcode": "0123 SS", "house_number": 1}]),
        role="source",
    ),
    Bad(
        "registration-not-json",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_input",
        _raw(b"ref=BPS-9"),
        role="source",
    ),
    Bad(
        "registration-not-an-object",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_input",
        _json(["BPS-9"]),
        role="source",
    ),
    Bad(
        "registration-ref-differs-from-url",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_input",
        _registration(ref="BPS-10"),
        role="source",
    ),
    Bad(
        "registration-without-identifiers",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_input",
        _registration(identifiers=[]),
        role="source",
    ),
    Bad(
        "registration-unknown-field",
        "PUT",
        "/api/v1/registrations/BPS-9",
        400,
        "invalid_input",
        _registration(bsn="123456782"),
        role="source",
    ),
    Bad(
        "registration-oversized",
        "PUT",
        "/api/v1/registrations/BPS-9",
        413,
        "payload_too_large",
        _registration(themes=["veelplegers"] * (TOO_BIG // 14)),
        role="source",
    ),
    Bad(
        "delete-unknown-registration",
        "DELETE",
        "/api/v1/registrations/BPS-404",
        404,
        "not_found",
        role="source",
    ),
    # --- queries ---
    Bad(
        "query-unknown-convenant",
        "POST",
        "/api/v1/bekendheid",
        403,
        "unknown_convenant",
        _query(convenant_id="vh-test-onbekend"),
        node="vh-test",
    ),
    Bad(
        "query-without-subjects",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_input",
        _query(subjects=[]),
        node="vh-test",
    ),
    Bad(
        "query-with-65-subjects",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_input",
        _query(subjects=[JAN_BSN] * 65),
        node="vh-test",
    ),
    Bad(
        "query-not-json",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_input",
        _raw(b"{'convenant_id': 'x'}"),
        node="vh-test",
    ),
    Bad(
        "query-unknown-field",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_input",
        _query(requester="politie-test"),
        node="vh-test",
    ),
    Bad(
        "query-missing-case-ref",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_input",
        _query(case_ref=""),
        node="vh-test",
    ),
    Bad(
        "query-unknown-subject-kind",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_identifier",
        _query(subjects=[{"kind": "kenteken", "value": "AB-12-CD"}]),
        node="vh-test",
    ),
    Bad(
        "query-unknown-partner",
        "POST",
        "/api/v1/bekendheid",
        403,
        "not_a_party",
        _query(partners=["nergens-test"]),
        node="vh-test",
    ),
    Bad(
        "query-oversized",
        "POST",
        "/api/v1/bekendheid",
        413,
        "payload_too_large",
        _query(case_ref="C" * TOO_BIG),
        node="vh-test",
    ),
]


async def _send(fed: Federation, bad: Bad) -> tuple[int, str, bytes, dict[str, str]]:
    assert fed.session is not None
    node = fed.nodes[bad.node]
    headers = {"Content-Type": bad.content_type}
    if bad.authorization is not None:
        headers["Authorization"] = bad.authorization
    elif bad.role is not None and bad.path.startswith("/api/"):
        headers["Authorization"] = "Bearer " + node.tokens[bad.role]
    data = bad.body(fed) if bad.body else None
    async with fed.session.request(
        bad.method, node.url + bad.path, data=data, headers=headers
    ) as resp:
        return resp.status, resp.content_type, await resp.read(), dict(resp.headers)


def _assert_problem(status: int, content_type: str, body: bytes, bad: Bad) -> dict[str, Any]:
    assert status == bad.status, body[:300]
    assert content_type == PROBLEM
    problem = json.loads(body)
    assert problem["type"] == PROBLEM_BASE + bad.code
    assert problem["status"] == status
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"]
    assert problem["instance"] == bad.path
    return dict(problem)


async def _audit_ok(fed: Federation, node_id: str) -> None:
    status, report = await fed.api(node_id, "GET", "/api/v1/audit/verify", role="privacy_officer")
    assert status == 200
    assert report["ok"] is True, report["problems"]


@pytest.mark.parametrize("bad", CASES, ids=lambda b: b.id)
async def test_bad_input_gets_problem_json_and_changes_nothing(
    federation: Federation, bad: Bad
) -> None:
    federation.register(
        "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
    )
    before = state_counts(federation)
    status, content_type, body, _ = await _send(federation, bad)
    _assert_problem(status, content_type, body, bad)
    assert state_counts(federation) == before
    await _audit_ok(federation, bad.node)


async def test_invalid_bsn_registration_leaves_the_registry_unchanged(
    federation: Federation,
) -> None:
    status, node = await federation.api("politie-test", "GET", "/api/v1/node", role="source")
    assert status == 200
    before = node["registrations"]
    status, problem = await federation.api(
        "politie-test",
        "PUT",
        "/api/v1/registrations/BPS-9",
        role="source",
        json={
            "themes": ["veelplegers"],
            "identifiers": [
                {"kind": "bsn", "bsn": "123456782"},
                {"kind": "bsn", "bsn": "123456789"},
            ],
        },
    )
    assert status == 400
    assert problem["type"] == PROBLEM_BASE + "invalid_bsn"
    assert "11-proef" in problem["detail"]
    _, node = await federation.api("politie-test", "GET", "/api/v1/node", role="source")
    assert node["registrations"] == before
    # The valid identifier in the same registration was not half-stored either.
    result = await federation.query("vh-test", [JAN_BSN])
    assert {p["partner"]: p["status"] for p in result["partners"]}["politie-test"] == "no_hit"


async def test_audit_log_verifies_everywhere_after_all_bad_input(federation: Federation) -> None:
    for bad in CASES:
        status, _, _, _ = await _send(federation, bad)
        assert status == bad.status, bad.id
    for node_id in federation.nodes:
        await _audit_ok(federation, node_id)
    # And the nodes still answer.
    result = await federation.query("vh-test", [JAN_BSN])
    assert {p["status"] for p in result["partners"]} == {"no_hit"}


async def test_blinded_element_that_is_not_a_point_is_a_signed_refusal_not_a_crash(
    federation: Federation,
) -> None:
    """Well-formed but unusable elements are a policy answer (signed), not problem+json."""
    doc = evaluate_request(federation, "vh-test", "politie-test", elements=[b"\xee" * 32])
    status, content_type, _, _ = await _send_doc(federation, doc)
    assert (status, content_type) == (403, JOSE)
    good = evaluate_request(
        federation, "vh-test", "politie-test", elements=oprf.blind([BSN_KEY])[1]
    )
    assert (await _send_doc(federation, good))[0] == 200


async def _send_doc(fed: Federation, doc: jws.SignedDocument) -> tuple[int, str, bytes, Any]:
    bad = Bad("doc", "POST", EVALUATE_PATH, 0, "", _raw(jws_bytes(doc)), content_type=JOSE)
    return await _send(fed, bad)


# --- known bugs --------------------------------------------------------------------------------

NESTED = b"[" * 100_000
HUGE_NUMBER = b"9" * 5000


@pytest.mark.parametrize("body", [NESTED, HUGE_NUMBER], ids=["deeply-nested", "huge-number"])
@pytest.mark.parametrize("path", [EVALUATE_PATH, TAG_SET_PATH], ids=["evaluate", "tag-set"])
async def test_pathological_json_to_a_peer_endpoint_is_a_400_not_a_500(
    federation: Federation, body: bytes, path: str
) -> None:
    """Deep nesting raises RecursionError in json.loads, a number over 4300 digits a
    plain ValueError: both are malformed messages, not internal errors."""
    bad = Bad("json", "POST", path, 400, "malformed_message", _raw(body), role=None)
    before = state_counts(federation)
    status, content_type, answer, _ = await _send(federation, bad)
    _assert_problem(status, content_type, answer, bad)
    assert state_counts(federation) == before


@pytest.mark.parametrize("body", [NESTED, HUGE_NUMBER], ids=["deeply-nested", "huge-number"])
@pytest.mark.parametrize(
    ("method", "path", "node", "role"),
    [
        ("POST", "/api/v1/bekendheid", "vh-test", "coordinator"),
        ("PUT", "/api/v1/registrations/BPS-9", "politie-test", "source"),
    ],
    ids=["bekendheid", "registration"],
)
async def test_pathological_json_to_the_api_is_a_400_not_a_500(
    federation: Federation, body: bytes, method: str, path: str, node: str, role: str
) -> None:
    bad = Bad("json", method, path, 400, "invalid_input", _raw(body), node=node, role=role)
    status, content_type, answer, _ = await _send(federation, bad)
    _assert_problem(status, content_type, answer, bad)


async def test_method_not_allowed_names_the_allowed_methods(federation: Federation) -> None:
    bad = Bad("get-evaluate", "GET", EVALUATE_PATH, 405, "method_not_allowed")
    status, content_type, body, headers = await _send(federation, bad)
    _assert_problem(status, content_type, body, bad)
    assert headers.get("Allow") == "POST"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/bekendheid", 405, "method_not_allowed"),
        ("GET", "/api/v1/alles", 404, "not_found"),
    ],
    ids=["wrong-method", "unknown-route"],
)
async def test_api_routing_errors_are_not_reported_as_forbidden(
    federation: Federation, method: str, path: str, status: int, code: str
) -> None:
    bad = Bad("api", method, path, status, code, node="vh-test", role="coordinator")
    got, content_type, body, _ = await _send(federation, bad)
    _assert_problem(got, content_type, body, bad)


async def test_query_with_invalid_bsn_is_invalid_bsn(federation: Federation) -> None:
    bad = Bad(
        "query-invalid-bsn",
        "POST",
        "/api/v1/bekendheid",
        400,
        "invalid_bsn",
        _query(subjects=[{"kind": "bsn", "bsn": "123456789"}]),
        node="vh-test",
    )
    status, content_type, body, _ = await _send(federation, bad)
    _assert_problem(status, content_type, body, bad)

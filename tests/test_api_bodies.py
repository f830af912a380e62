"""A local API body that is JSON but not an object is refused in the API's own words:
problem+json ``invalid_input`` whose detail names no class of the node's code."""

from __future__ import annotations

import pytest

from tests.federation import Federation

ROUTES = [
    ("PUT", "/api/v1/registrations/BPS-1", "source"),
    ("POST", "/api/v1/bekendheid", "coordinator"),
    ("POST", "/api/v1/details", "coordinator"),
    ("POST", "/api/v1/liaison/requests/vh-test/" + "a" * 32 + "/approve", "liaison"),
    ("POST", "/api/v1/audit/inzage", "privacy_officer"),
]


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
@pytest.mark.parametrize(
    ("body", "kind"), [(b"[]", "an array"), (b'[{"kind": "bsn"}]', "an array"), (b"7", "a number")]
)
async def test_a_body_that_is_not_an_object_is_invalid_input_in_plain_words(
    federation: Federation, method: str, path: str, role: str, body: bytes, kind: str
) -> None:
    status, problem = await federation.api("politie-test", method, path, role, data=body)
    assert status == 400, problem
    assert problem["type"] == "https://vhnode.nl/problems/invalid_input"
    assert problem["detail"] == f"body must be a JSON object, not {kind}"
    for internal in ("Query", "Body", "Decision", "instance of", "dictionary"):
        assert internal not in problem["detail"]

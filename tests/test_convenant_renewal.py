"""A new convenant version: the same scope keeps the tag set, a new scope changes answers."""

from __future__ import annotations

from node.store import tag_sets
from tests.federation import (
    CONVENANT_ID,
    DEFAULT_PARTIES,
    Federation,
    convenant_toml,
    statuses,
)

JAN = {"kind": "bsn", "bsn": "123456782"}


def _version(fed: Federation, node_id: str) -> int:
    return tag_sets.head(fed.nodes[node_id].ctx.conn, CONVENANT_ID).version


async def test_renewal_with_the_same_scope_publishes_no_new_tag_set(
    federation: Federation,
) -> None:
    federation.register(
        "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN]}
    )
    before = _version(federation, "politie-test")
    federation.sign_and_install(convenant_toml(DEFAULT_PARTIES, version=2))
    assert _version(federation, "politie-test") == before
    result = await federation.query("vh-test", [JAN])
    assert result["convenant_version"] == 2
    assert statuses(result)["politie-test"] == "hit"


async def test_renewal_that_narrows_the_scope_changes_the_answer(federation: Federation) -> None:
    federation.register(
        "politie-test", {"ref": "BPS-2", "themes": ["huiselijk_geweld"], "identifiers": [JAN]}
    )
    assert statuses(await federation.query("vh-test", [JAN]))["politie-test"] == "hit"
    narrowed = tuple(
        (n, t, ("veelplegers",) if n == "politie-test" else s, q) for n, t, s, q in DEFAULT_PARTIES
    )
    before = _version(federation, "politie-test")
    federation.sign_and_install(convenant_toml(narrowed, version=2))
    assert _version(federation, "politie-test") == before + 1
    result = await federation.query("vh-test", [JAN])
    assert result["convenant_version"] == 2
    assert statuses(result)["politie-test"] == "no_hit"

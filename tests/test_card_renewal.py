"""A node renews its own peer card (issue 9, item 7) and partners take it as an update
(docs/protocol.md §4.1, §4.2): new validity, new endpoint, same keys. Real nodes on
127.0.0.1, real cards, and the ``vhnode card renew`` command as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from node.errors import CardNotYetValid, Conflict, MalformedMessage
from node.flows import admin
from node.flows.admin import issue_card
from node.protocol import jws
from node.protocol.models import rfc3339
from node.protocol.peer_card import PEER_CARD_TYP, verify_card
from node.store import peers
from node.store.db import tx
from tests.federation import (
    Federation,
    bound_socket,
    log_entries,
    partner_result,
    statuses,
)

JAN = {"kind": "bsn", "bsn": "123456782"}
JAN_AT_POLITIE = {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN]}


async def _move(fed: Federation, node_id: str) -> str:
    """Stop a node and give it another port: the old endpoint no longer answers."""
    node = fed.nodes[node_id]
    await fed.stop(node_id)
    node.sock = bound_socket()
    node.port = int(node.sock.getsockname()[1])
    return node.url


def _set_clocks(fed: Federation, days: int) -> None:
    for node in fed.nodes.values():
        node.clock.set(fed.started_at + timedelta(days=days))


async def test_renewed_cards_keep_rounds_working_past_the_first_cards_end_at_the_new_endpoint(
    federation: Federation,
) -> None:
    fed = federation
    fed.register("politie-test", JAN_AT_POLITIE)
    politie = fed.nodes["politie-test"]
    first_end = admin.own_card(politie.ctx)[0].valid_until
    old_url = politie.url
    old_card = politie.card_json()

    # A month before the cards end, every node renews; politie also moves.
    _set_clocks(fed, 700)
    new_url = await _move(fed, "politie-test")
    assert new_url != old_url
    for node in fed.nodes.values():
        moved = node is politie
        admin.renew_card(node.ctx, endpoint=new_url if moved else None, days=365)
    await fed.start("politie-test")
    assert tomllib.loads((politie.home / "node.toml").read_text())["endpoint"] == new_url
    for a in fed.nodes.values():
        for b in fed.nodes.values():
            if a is not b:
                assert admin.add_peer(a.ctx, b.card_json())[1] == "updated"
    vh = fed.nodes["vh-test"]
    held = peers.by_id(vh.ctx.conn, "politie-test")
    assert held is not None
    assert held.card.endpoint_url == new_url
    updated = {e["counterparty"] for e in log_entries(vh, "peer.updated")}
    assert updated == {"politie-test", "om-test", "ggz-test"}
    renewed = log_entries(politie, "card.renewed")[-1]
    assert renewed["data"]["endpoint"] == new_url

    # A card captured before the renewal does not undo it (§4.2 step 4).
    with pytest.raises(Conflict, match="older card does not replace a newer one"):
        admin.add_peer(vh.ctx, old_card)
    held = peers.by_id(vh.ctx.conn, "politie-test")
    assert held is not None
    assert held.card.endpoint_url == new_url

    # Past the first cards' end: both directions still work, and reach politie only at
    # its new port (nothing listens at the old one).
    _set_clocks(fed, 800)
    assert fed.nodes["vh-test"].clock.now() > first_end
    result = await fed.query("vh-test", [JAN], partners=["politie-test"])
    assert statuses(result) == {"politie-test": "hit"}
    back = await fed.query("politie-test", [JAN], partners=["vh-test"])
    assert statuses(back) == {"vh-test": "no_hit"}
    # The node serves its renewed card.
    assert fed.session is not None
    async with fed.session.get(new_url + "/peer/v1/card") as resp:
        served, _ = verify_card(await resp.json(content_type=None))
    assert served.valid_until > first_end
    assert served.endpoint_url == new_url


async def test_a_card_without_renewal_ends_every_round(federation: Federation) -> None:
    # The control of the test above: without a renewal, day 800 refuses the requester.
    fed = federation
    fed.register("politie-test", JAN_AT_POLITIE)
    _set_clocks(fed, 800)
    p = partner_result(await fed.query("vh-test", [JAN], partners=["politie-test"]), "politie-test")
    assert (p["status"], p["reason"]) == ("invalid", "revoked_partner")


async def test_a_held_card_issued_in_the_future_does_not_block_later_cards(
    federation: Federation,
) -> None:
    fed = federation
    vh, politie = fed.nodes["vh-test"], fed.nodes["politie-test"]
    ten_years = fed.started_at + timedelta(days=3650)
    from_future = issue_card(politie.ctx.cfg, politie.ctx.keys, ten_years)
    # A receiver now refuses such a card, naming the clock (§4.2 step 1) ...
    with pytest.raises(CardNotYetValid, match="ahead of this node's clock"):
        admin.add_peer(vh.ctx, from_future.to_json())
    # ... and one it held from before that rule (stored as the old code did) orders
    # nothing: the issuer's renewal with a correct clock replaces it.
    with tx(vh.ctx.conn):
        assert peers.add(vh.ctx.conn, from_future, ten_years) == "updated"
    politie.clock.advance(timedelta(minutes=1))
    admin.renew_card(politie.ctx)
    assert admin.add_peer(vh.ctx, politie.card_json())[1] == "updated"
    held = peers.by_id(vh.ctx.conn, "politie-test")
    assert held is not None
    assert held.card.issued_at == politie.clock.now().replace(microsecond=0)


async def test_an_endpoint_with_a_trailing_slash_names_the_same_base(
    federation: Federation,
) -> None:
    fed = federation
    fed.register("politie-test", JAN_AT_POLITIE)
    vh, politie = fed.nodes["vh-test"], fed.nodes["politie-test"]
    politie.clock.advance(timedelta(seconds=1))
    card, _ = admin.own_card(politie.ctx)
    payload = card.wire() | {
        "endpoint": politie.url + "/",
        "issued_at": rfc3339(politie.clock.now()),
    }
    doc = jws.sign(PEER_CARD_TYP, payload, politie.ctx.keys.signing)
    assert doc.payload["endpoint"].endswith("/")
    assert admin.add_peer(vh.ctx, doc.to_json())[1] == "updated"
    result = await fed.query("vh-test", [JAN], partners=["politie-test"])
    assert statuses(result) == {"politie-test": "hit"}


async def test_a_card_with_a_second_signature_is_refused(federation: Federation) -> None:
    vh, politie = federation.nodes["vh-test"], federation.nodes["politie-test"]
    doc = jws.parse(politie.card_json(), PEER_CARD_TYP)
    cosigned = doc.with_signature(vh.ctx.keys.signing)
    assert len(cosigned.signatures) == 2
    with pytest.raises(MalformedMessage, match="exactly one signature"):
        admin.add_peer(vh.ctx, cosigned.to_json())


# --- the command ---------------------------------------------------------------------------


def _vhnode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_card_renew_command_issues_a_card_partners_take_as_an_update(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("vh", "politie")}
    for name, org_type in (("vh", "veiligheidshuis"), ("politie", "politie")):
        done = _vhnode(
            "init", "--home", homes[name], "--node-id", f"{name}-zwb", "--organisation",
            f"Organisatie {name}", "--org-type", org_type, "--endpoint", "http://127.0.0.1:8401",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    (homes["politie"] / "node.toml").write_text(
        "# politie's own comment stays\n" + (homes["politie"] / "node.toml").read_text()
    )
    old_card = tmp_path / "politie-old.json"
    assert _vhnode("card", "export", "--home", homes["politie"], "-o", old_card).returncode == 0
    assert _vhnode("peer", "add", "--home", homes["vh"], old_card).returncode == 0

    renew = _vhnode(
        "card", "renew", "--home", homes["politie"], "--endpoint",
        "https://vhnode.politie.example/zwb/", "--days", "400",
    )  # fmt: skip
    assert renew.returncode == 0, renew.stderr
    assert "https://vhnode.politie.example/zwb" in renew.stdout
    config_text = (homes["politie"] / "node.toml").read_text()
    assert config_text.startswith("# politie's own comment stays\n")
    assert tomllib.loads(config_text)["endpoint"] == "https://vhnode.politie.example/zwb"
    new_card = json.loads((homes["politie"] / "card.json").read_text())
    card, _ = verify_card(new_card)
    assert card.endpoint_url == "https://vhnode.politie.example/zwb"
    assert card.valid_until - card.valid_from == timedelta(days=400)

    new_file = tmp_path / "politie-new.json"
    assert _vhnode("card", "export", "--home", homes["politie"], "-o", new_file).returncode == 0
    added = _vhnode("peer", "add", "--home", homes["vh"], new_file)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("updated: politie-zwb")
    listed = json.loads(_vhnode("peer", "list", "--home", homes["vh"], "--json").stdout)
    assert listed[0]["endpoint"] == "https://vhnode.politie.example/zwb"
    again = _vhnode("peer", "add", "--home", homes["vh"], old_card)
    assert again.returncode != 0
    assert again.stderr.startswith("error: ")
    assert "older card does not replace a newer one" in again.stderr
    assert again.stderr.count("\n") == 1

    bad = _vhnode("card", "renew", "--home", homes["politie"], "--endpoint", "ftp://x")
    assert bad.returncode != 0
    assert bad.stderr.startswith("error: endpoint")
    assert "Traceback" not in bad.stderr

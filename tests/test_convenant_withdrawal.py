"""A party withdraws from a convenant with a signed statement (docs/protocol.md §5.7).

Real nodes (tests/federation.py): om-test signs its withdrawal, every node installs it,
and from ``withdrawn_at`` on om-test is no party any more: not asked, not answered, given
no detail. A new version that om-test signs again makes it a party again.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import main
from node.clock import SYSTEM_CLOCK
from node.errors import BadSignature, NotAParty, PartyWithdrawn, UnknownConvenant
from node.flows import admin
from node.flows.asking import ask_bekendheid
from node.policy.detail import decide_category
from node.protocol import jws
from node.protocol.bekendheid import EVALUATE_RESPONSE_TYP, TAG_SET_RESPONSE_TYP
from node.protocol.identifiers import parse_identifier
from node.protocol.withdrawal import WITHDRAWAL_TYP
from tests.federation import (
    CONVENANT_ID,
    DEFAULT_PARTIES,
    EVALUATE_PATH,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    convenant_toml,
    evaluate_request,
    interpose,
    log_entries,
    open_signed,
    partner_result,
    post_peer,
    state_counts,
    statuses,
    tag_set_request,
    withdraw,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
PROVIDERS = ("vh-test", "politie-test", "om-test", "ggz-test")


def _withdrawal_rows(fed: Federation) -> dict[str, int]:
    return {
        n: int(node.ctx.conn.execute("SELECT COUNT(*) FROM convenant_withdrawals").fetchone()[0])
        for n, node in fed.nodes.items()
    }


# --- the requester side: a withdrawn partner is not asked -------------------------------------


async def test_withdrawn_provider_is_reported_refused_and_never_sent_anything(
    federation: Federation,
) -> None:
    withdraw(federation, "om-test")
    proxy = await interpose(federation, "om-test")
    result = await federation.query("vh-test", [JAN_BSN])
    om = partner_result(result, "om-test")
    assert (om["status"], om["reason"]) == ("refused", "party_withdrawn")
    assert om["detail"].startswith("withdrew from the convenant at ")
    assert om["subjects"] == ["refused"]
    assert proxy.requests == []  # not an evaluate, not a tag-set request: nothing
    assert statuses(result) == {
        "vh-test": "no_hit",
        "politie-test": "no_hit",
        "om-test": "refused",
        "ggz-test": "no_hit",
    }
    asked = [
        e
        for e in log_entries(federation.nodes["vh-test"], "bekendheid.asked")
        if e["counterparty"] == "om-test"
    ]
    assert (asked[-1]["outcome"], asked[-1]["reason"]) == ("refused", "party_withdrawn")


async def test_withdrawal_is_logged_by_the_party_and_by_every_installer(
    federation: Federation,
) -> None:
    withdraw(federation, "om-test")
    own = log_entries(federation.nodes["om-test"], "convenant.withdrawn")
    assert len(own) == 1
    assert own[0]["convenant"] == {"id": CONVENANT_ID, "version": 1}
    for node_id in ("vh-test", "politie-test", "ggz-test"):
        [entry] = log_entries(federation.nodes[node_id], "convenant.withdrawal_installed")
        assert entry["counterparty"] == "om-test"
    # Installing the same document again changes nothing and logs nothing.
    before = state_counts(federation)
    stored = (
        federation.nodes["vh-test"]
        .ctx.conn.execute("SELECT document FROM convenant_withdrawals")
        .fetchone()[0]
    )
    _, new = admin.install_withdrawal(federation.nodes["vh-test"].ctx, json.loads(stored))
    assert new is False
    assert state_counts(federation) == before


# --- the provider side: a withdrawn requester is refused by everyone ---------------------------


async def test_withdrawn_requester_refuses_to_ask_itself(federation: Federation) -> None:
    withdraw(federation, "vh-test")
    status, body = await federation.api(
        "vh-test",
        "POST",
        "/api/v1/bekendheid",
        json={
            "convenant_id": CONVENANT_ID,
            "purpose": PURPOSE,
            "case_ref": "C-1",
            "subjects": [JAN_BSN],
        },
    )
    assert status == 403
    assert body["type"].endswith("/party_withdrawn")


@pytest.mark.parametrize("provider", ["politie-test", "om-test", "ggz-test"])
async def test_withdrawn_requester_that_bypasses_its_own_check_is_refused(
    federation: Federation, provider: str
) -> None:
    withdraw(federation, "vh-test")
    doc = evaluate_request(federation, "vh-test", provider)
    reply = await post_peer(federation, provider, EVALUATE_PATH, doc)
    assert reply.status == 403
    payload = open_signed(federation, provider, reply.body, EVALUATE_RESPONSE_TYP)
    assert (payload["outcome"], payload["reason"]) == ("refused", "party_withdrawn")
    assert payload["evaluated_elements"] is None
    assert payload["request_hash"] == jws.b64u_encode(doc.digest())
    last = log_entries(federation.nodes[provider])[-1]
    assert (last["kind"], last["reason"]) == ("bekendheid.refused", "party_withdrawn")
    assert last["data"]["rule"] == "requester-not-withdrawn"
    assert last["counterparty"] == "vh-test"
    tag_doc = tag_set_request(federation, "vh-test", provider)
    reply = await post_peer(federation, provider, TAG_SET_PATH, tag_doc)
    assert reply.status == 403
    payload = open_signed(federation, provider, reply.body, TAG_SET_RESPONSE_TYP)
    assert (payload["outcome"], payload["reason"]) == ("refused", "party_withdrawn")
    assert payload["added"] is None


async def test_withdrawn_provider_refuses_to_answer(federation: Federation) -> None:
    # A requester that has not installed om-test's withdrawal still asks: om-test itself
    # refuses, signed, under the rule for its own side.
    withdraw(federation, "om-test", installed_by=[])
    result = await federation.query("politie-test", [JAN_BSN])
    om = partner_result(result, "om-test")
    assert (om["status"], om["reason"]) == ("refused", "party_withdrawn")
    last = log_entries(federation.nodes["om-test"], "bekendheid.refused")[-1]
    assert last["data"]["rule"] == "provider-not-withdrawn"
    assert statuses(result)["ggz-test"] == "no_hit"


# --- only the party itself can withdraw --------------------------------------------------------


def _resigned(fed: Federation, doc: Any, signer: str) -> Any:
    parsed = jws.parse(doc, WITHDRAWAL_TYP)
    return jws.sign(WITHDRAWAL_TYP, parsed.payload, fed.nodes[signer].ctx.keys.signing).to_json()


async def test_withdrawal_signed_by_another_partys_key_is_rejected(
    federation: Federation,
) -> None:
    genuine = withdraw(federation, "om-test", installed_by=[])
    forged = _resigned(federation, genuine, "politie-test")
    before = state_counts(federation), _withdrawal_rows(federation)
    with pytest.raises(BadSignature):
        admin.install_withdrawal(federation.nodes["vh-test"].ctx, forged)
    # Both signatures together are not om-test's statement alone either.
    both = jws.merge([jws.parse(genuine, WITHDRAWAL_TYP), jws.parse(forged, WITHDRAWAL_TYP)])
    with pytest.raises(BadSignature):
        admin.install_withdrawal(federation.nodes["vh-test"].ctx, both.to_json())
    # A flipped signature byte does not verify.
    tampered = json.loads(json.dumps(genuine))
    sig = bytearray(jws.b64u_decode(tampered["signatures"][0]["signature"]))
    sig[0] ^= 0xFF
    tampered["signatures"][0]["signature"] = jws.b64u_encode(bytes(sig))
    with pytest.raises(BadSignature):
        admin.install_withdrawal(federation.nodes["vh-test"].ctx, tampered)
    assert (state_counts(federation), _withdrawal_rows(federation)) == before
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result)["om-test"] == "refused"  # om-test's own node refuses
    assert partner_result(result, "om-test")["reason"] == "party_withdrawn"


async def test_withdrawal_of_a_stranger_or_unknown_convenant_is_rejected(
    federation: Federation,
) -> None:
    genuine = withdraw(federation, "om-test", installed_by=[])
    payload = dict(jws.parse(genuine, WITHDRAWAL_TYP).payload)
    key = federation.nodes["om-test"].ctx.keys.signing
    stranger = jws.sign(WITHDRAWAL_TYP, {**payload, "party": "buurman-test"}, key).to_json()
    with pytest.raises(NotAParty):
        admin.install_withdrawal(federation.nodes["vh-test"].ctx, stranger)
    unknown = jws.sign(WITHDRAWAL_TYP, {**payload, "convenant_version": 7}, key).to_json()
    with pytest.raises(UnknownConvenant):
        admin.install_withdrawal(federation.nodes["vh-test"].ctx, unknown)


# --- to the second -----------------------------------------------------------------------------


async def test_withdrawal_in_the_future_takes_effect_only_then(federation: Federation) -> None:
    at = (federation.started_at + timedelta(hours=1)).replace(microsecond=0)
    withdraw(federation, "om-test", at=at)
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result)["om-test"] == "no_hit"

    def move_clocks(to: datetime) -> None:
        for node in federation.nodes.values():
            node.clock.set(to)

    move_clocks(at - timedelta(seconds=30))
    assert statuses(await federation.query("vh-test", [JAN_BSN]))["om-test"] == "no_hit"
    move_clocks(at + timedelta(seconds=1))
    result = await federation.query("vh-test", [JAN_BSN])
    om = partner_result(result, "om-test")
    assert (om["status"], om["reason"]) == ("refused", "party_withdrawn")
    assert at.strftime("%Y-%m-%dT%H:%M:%SZ") in om["detail"]


# --- re-admission by a new version --------------------------------------------------------------


async def test_new_version_signed_again_readmits_the_party(federation: Federation) -> None:
    withdraw(federation, "om-test")
    assert statuses(await federation.query("vh-test", [JAN_BSN]))["om-test"] == "refused"
    federation.sign_and_install(convenant_toml(DEFAULT_PARTIES, version=2))
    result = await federation.query("vh-test", [JAN_BSN])
    assert result["convenant_version"] == 2
    assert statuses(result) == dict.fromkeys(PROVIDERS, "no_hit")


# --- detail decisions ---------------------------------------------------------------------------


async def test_detail_policy_denies_a_withdrawn_provider_or_recipient(
    federation: Federation,
) -> None:
    withdraw(federation, "om-test")
    ctx = federation.nodes["politie-test"].ctx
    conv = ctx.trust().versions(CONVENANT_ID)[0].convenant
    gone = ctx.trust().withdrawals_of(CONVENANT_ID)
    now = ctx.clock.now()
    for provider, requester in (("om-test", "vh-test"), ("politie-test", "om-test")):
        d = decide_category(
            conv, provider, requester, "coordinator", PURPOSE, "contactpersoon", now, gone
        )
        assert (d.outcome, d.rule, d.reason) == ("deny", "parties-not-withdrawn", "party_withdrawn")
    d = decide_category(
        conv, "politie-test", "vh-test", "coordinator", PURPOSE, "contactpersoon", now, gone
    )
    assert d.rule != "parties-not-withdrawn"  # the others are unaffected


# --- CLI ----------------------------------------------------------------------------------------


async def test_cli_withdraw_install_status_round_trip(
    federation: Federation, tmp_path: Path
) -> None:
    runner = CliRunner()
    om, vh = federation.nodes["om-test"], federation.nodes["vh-test"]
    out = tmp_path / "withdrawal.json"
    r = runner.invoke(
        main,
        [
            "convenant",
            "withdraw",
            CONVENANT_ID,
            "--reason",
            "Reorganisatie",
            "-o",
            str(out),
            "--home",
            str(om.home),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["convenant", "install-withdrawal", str(out), "--home", str(vh.home)])
    assert r.exit_code == 0, r.output
    assert "installed: om-test withdraws" in r.output
    conv_file = tmp_path / "convenant.json"
    conv_file.write_text(json.dumps(vh.ctx.trust().versions(CONVENANT_ID)[0].document.to_json()))
    r = runner.invoke(
        main, ["convenant", "status", str(conv_file), "--json", "--home", str(vh.home)]
    )
    assert r.exit_code == 0, r.output
    parties = {p["node_id"]: p for p in json.loads(r.output)["parties"]}
    assert parties["om-test"]["withdrawn_at"] is not None
    assert parties["politie-test"]["withdrawn_at"] is None
    r = runner.invoke(main, ["convenant", "status", str(conv_file), "--home", str(vh.home)])
    assert "withdrawn" in r.output
    # The CLI signed the withdrawal on the machine's clock; om's held clock catches up to it.
    om.clock.set(SYSTEM_CLOCK.now())
    with pytest.raises(PartyWithdrawn):
        await _ask_directly(federation, "om-test")
    # A bad file: one error line, nothing installed.
    for bad_text in (
        "not json",
        json.dumps({"payload": "x", "signatures": []}),
        conv_file.read_text(),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(bad_text)
        before = _withdrawal_rows(federation)
        r = runner.invoke(
            main,
            [
                "convenant",
                "install-withdrawal",
                str(bad),
                "--home",
                str(federation.nodes["ggz-test"].home),
            ],
        )
        assert r.exit_code == 1
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("error: ")
        assert _withdrawal_rows(federation) == before


async def _ask_directly(fed: Federation, node_id: str) -> None:
    """Ask through the client code itself (raises the local refusal)."""
    assert fed.session is not None
    await ask_bekendheid(
        fed.nodes[node_id].ctx,
        fed.session,
        CONVENANT_ID,
        PURPOSE,
        "C-1",
        "tester",
        [parse_identifier(JAN_BSN)],
    )

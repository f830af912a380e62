"""User names are ASCII identifiers (docs/protocol.md §2.4, docs/cli.md ``user add``).

A user name travels to every partner as ``requesting_user``, is logged there and shown
to its liaison. A look-alike — "аdmin" with a Cyrillic 'а' — would pass for another
user, so names are restricted to lowercase ASCII letters, digits, '.', '_' and '-' when
a user is created (real ``vhnode`` processes here) and when a peer's request carries one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from node.errors import InputError
from node.protocol import jws
from node.protocol.bekendheid import EVALUATE_REQUEST_TYP
from node.protocol.detail import DetailRequest, HitNotice
from node.protocol.fields import check_user_name
from tests.federation import (
    EVALUATE_PATH,
    Federation,
    evaluate_request,
    log_entries,
    post_peer,
)

LOOK_ALIKE = "\u0430dmin"  # Cyrillic small a, then "dmin"


def vhnode(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VHNODE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_user_add_refuses_a_look_alike_name_with_a_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "node"
    init = vhnode(
        home,
        "init",
        "--node-id",
        "vh-test",
        "--organisation",
        "Veiligheidshuis test",
        "--org-type",
        "veiligheidshuis",
        "--endpoint",
        "http://127.0.0.1:8400",
    )
    assert init.returncode == 0, init.stderr
    for name, words in (
        (LOOK_ALIKE, "CYRILLIC SMALL LETTER A"),
        ("Admin", "LATIN CAPITAL LETTER A"),
        ("jan de vries", "SPACE"),
        ("_admin", "starting with a letter or digit"),
        ("a" * 65, "1-64"),
    ):
        refused = vhnode(home, "user", "add", name, "--role", "coordinator")
        assert refused.returncode == 1, refused.stdout
        lines = refused.stderr.splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith("error: user name "), refused.stderr
        assert words in lines[0]
        assert "Traceback" not in refused.stderr
    added = vhnode(home, "user", "add", "admin", "--role", "coordinator")
    assert added.returncode == 0, added.stderr
    listed = vhnode(home, "user", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [u["name"] for u in json.loads(listed.stdout)] == ["admin"]


@pytest.mark.parametrize(
    "name",
    ["coordinator-vh-zwb", "liaison-politie-zwb", "j.de.vries", "bps_koppeling", "a", "0" * 64],
)
def test_names_in_use_stay_valid(name: str) -> None:
    assert check_user_name(name) == name


def test_a_name_is_checked_by_its_characters_not_by_how_it_looks() -> None:
    for name in (LOOK_ALIKE, "admin\u200b", "ａdmin", "admin\n", ""):
        with pytest.raises(InputError):
            check_user_name(name)


async def test_a_peer_request_from_a_look_alike_user_is_malformed(
    federation: Federation,
) -> None:
    fed = federation
    before = len(log_entries(fed.nodes["politie-test"]))
    # Signed with vh-test's real key: the name is refused for what it is, not for who sent it.
    payload = {**evaluate_request(fed, "vh-test", "politie-test").payload}
    payload["requesting_user"] = LOOK_ALIKE
    doc = jws.sign(EVALUATE_REQUEST_TYP, payload, fed.nodes["vh-test"].ctx.keys.signing)
    reply = await post_peer(fed, "politie-test", EVALUATE_PATH, doc)
    assert reply.status == 400
    problem = json.loads(reply.body)
    assert problem["type"] == "https://vhnode.nl/problems/malformed_message"
    assert "requesting_user" in problem["detail"]
    assert len(log_entries(fed.nodes["politie-test"])) == before  # nothing logged
    # The same request from "admin" is answered.
    doc = evaluate_request(fed, "vh-test", "politie-test", requesting_user="admin")
    assert (await post_peer(fed, "politie-test", EVALUATE_PATH, doc)).status == 200


@pytest.mark.parametrize("model", [DetailRequest, HitNotice])
def test_detail_messages_refuse_a_look_alike_requesting_user(model: type[BaseModel]) -> None:
    def errors(name: str) -> set[tuple[str | int, ...]]:
        try:
            model.model_validate({"requesting_user": name})
        except ValidationError as e:
            return {tuple(err["loc"]) for err in e.errors()}
        raise AssertionError("an empty message parsed")

    assert ("requesting_user",) in errors(LOOK_ALIKE)
    assert ("requesting_user",) not in errors("admin")

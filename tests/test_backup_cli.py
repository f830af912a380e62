"""``vhnode backup``, ``vhnode restore`` and ``vhnode backup-key`` as an admin runs them:
separate processes, against the home of a node that serves a real federation."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from node.store.backup import MAGIC
from tests.federation import Federation, statuses
from tests.test_cli_process import one_error_line, vhnode

JAN = {"kind": "bsn", "bsn": "123456782"}
OM = "om-test"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def error_of(*args: str) -> str:
    """The one ``error:`` line of a ``vhnode`` run that fails (exit 1)."""
    code, _, err = await vhnode(*args)
    return one_error_line(code, err)


def header(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    head: dict[str, object] = json.loads(data[len(MAGIC) :].split(b"\n", 1)[0])
    return head


async def test_passphrase_backup_while_serving_restores_into_a_new_home(
    federation: Federation, tmp_path: Path
) -> None:
    await federation.query("vh-test", [JAN], case_ref="CASUS-1")
    home = federation.nodes[OM].home
    phrase = tmp_path / "phrase"
    phrase.write_text("correct horse battery staple\n")
    out = tmp_path / "om.vhbackup"

    code, stdout, err = await vhnode(
        "backup", str(out), "--home", str(home), "--passphrase-file", str(phrase), "--with-keys"
    )
    assert code == 0, err
    assert "encryption passphrase" in stdout
    assert mode(out) == 0o600
    head = header(out)
    assert head["encryption"] == "passphrase"
    assert head["with_keys"] is True
    assert head["node_id"] == OM
    # Nothing of the database or the keys in clear.
    body = out.read_bytes()
    signing_key = (home / "keys" / "signing.key").read_text().strip()
    assert b"bekendheid.evaluated" not in body
    assert b"SQLite format" not in body
    assert signing_key.encode() not in body
    # The node served on while the copy was made.
    assert statuses(await federation.query("vh-test", [JAN], case_ref="CASUS-2"))[OM] == "no_hit"

    new_home = tmp_path / "elders" / "om-home"
    code, stdout, err = await vhnode(
        "restore", str(out), "--home", str(new_home), "--passphrase-file", str(phrase)
    )
    assert code == 0, err
    assert "asks its peers" in stdout
    assert mode(new_home) == 0o700
    for name in ("node.db", "node.toml", "keys/signing.key", "keys/oprf.seed"):
        assert mode(new_home / name) == 0o600, name
    assert (new_home / "keys" / "signing.key").read_text().strip() == signing_key
    code, stdout, err = await vhnode("status", "--home", str(new_home), "--json")
    assert code == 0, err
    assert json.loads(stdout)["node_id"] == OM
    # The test-restore drill: the log verifies; the copy signs nothing before its check.
    code, stdout, err = await vhnode("audit", "verify", "--home", str(new_home))
    assert code == 0, err
    assert stdout.startswith("OK:")
    assert "refused the record" in err


async def test_wrong_passphrase_and_misuse_are_one_line_errors(
    federation: Federation, tmp_path: Path
) -> None:
    home = federation.nodes[OM].home
    phrase, wrong = tmp_path / "phrase", tmp_path / "wrong"
    phrase.write_text("correct horse battery staple\n")
    wrong.write_text("incorrect horse\n")
    out = tmp_path / "om.vhbackup"
    code, _, err = await vhnode(
        "backup", str(out), "--home", str(home), "--passphrase-file", str(phrase)
    )
    assert code == 0, err

    line = await error_of(
        "restore", str(out), "--home", str(tmp_path / "x"), "--passphrase-file", str(wrong)
    )
    assert "wrong passphrase" in line
    # Keys leave the node only encrypted.
    line = await error_of(
        "backup", str(tmp_path / "plain"), "--home", str(home), "--unencrypted", "--with-keys"
    )
    assert "only encrypted" in line
    assert not (tmp_path / "plain").exists()
    # Never over an existing backup; never two protections at once.
    line = await error_of("backup", str(out), "--home", str(home), "--passphrase-file", str(phrase))
    assert "refusing to overwrite" in line
    line = await error_of(
        "backup",
        str(tmp_path / "b2"),
        "--home",
        str(home),
        "--unencrypted",
        "--passphrase-file",
        str(phrase),
    )
    assert "choose one of" in line
    # Not into the running node's home, and not over a database without --force.
    line = await error_of(
        "restore", str(out), "--home", str(home), "--passphrase-file", str(phrase), "--force"
    )
    assert "running" in line
    await federation.stop(OM)
    line = await error_of(
        "restore", str(out), "--home", str(home), "--passphrase-file", str(phrase)
    )
    assert "--force" in line
    # A backup without keys cannot make a home of its own.
    line = await error_of(
        "restore", str(out), "--home", str(tmp_path / "leeg"), "--passphrase-file", str(phrase)
    )
    assert "holds no keys" in line


async def test_recipient_backup_opens_only_with_its_identity(
    federation: Federation, tmp_path: Path
) -> None:
    home = federation.nodes[OM].home
    identity, other = tmp_path / "backup.id", tmp_path / "other.id"
    code, public, err = await vhnode("backup-key", str(identity))
    assert code == 0, err
    assert mode(identity) == 0o600
    code, _, err = await vhnode("backup-key", str(other))
    assert code == 0, err
    out = tmp_path / "om.vhbackup"
    code, _, err = await vhnode(
        "backup", str(out), "--home", str(home), "--recipient", public.strip()
    )
    assert code == 0, err
    assert header(out)["encryption"] == "recipient"
    assert mode(out) == 0o600

    await federation.stop(OM)
    line = await error_of(
        "restore", str(out), "--home", str(home), "--identity-file", str(other), "--force"
    )
    assert "another recipient key" in line
    code, stdout, err = await vhnode(
        "restore", str(out), "--home", str(home), "--identity-file", str(identity), "--force"
    )
    assert code == 0, err
    assert "replaced database is kept" in stdout
    kept = list(home.glob("node.db.replaced-*"))
    assert [p.name for p in kept if not p.name.endswith(("-wal", "-shm"))]
    assert all(mode(p) == 0o600 for p in kept)
    assert mode(home / "node.db") == 0o600

"""``vhnode backup``, ``vhnode restore`` and ``vhnode backup-key``: a node home to one
encrypted file and back (docs/operations.md "Backup and restore")."""

from __future__ import annotations

import os
from pathlib import Path

import click

from node.cli.common import fail, home_option, json_option, main, print_json
from node.clock import SYSTEM_CLOCK

_FILE = click.Path(dir_okay=False, path_type=Path)


def _read_secret(path: Path, what: str) -> bytes:
    try:
        text = path.expanduser().read_bytes()
    except OSError as e:
        fail(f"cannot read the {what} {path}: {e.strerror or e}")
    # A passphrase file ends with a newline as editors write it: not part of the phrase.
    secret = text.rstrip(b"\r\n")
    if not secret:
        fail(f"the {what} {path} is empty")
    return secret


def _hex_key(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        fail(f"{what} must be 64 hex digits (an X25519 key)")
    if len(raw) != 32:
        fail(f"{what} must be 64 hex digits (an X25519 key)")
    return raw


@main.command("backup")
@home_option
@click.argument("out", type=_FILE)
@click.option("--with-keys", is_flag=True, help="Include the node's key files (only encrypted).")
@click.option(
    "--passphrase-file",
    type=_FILE,
    help="Encrypt to the passphrase in this file (Argon2id, XChaCha20-Poly1305).",
)
@click.option(
    "--recipient",
    metavar="X25519-PUBKEY",
    help="Encrypt to this X25519 public key (64 hex digits; see 'vhnode backup-key').",
)
@click.option(
    "--unencrypted", is_flag=True, help="Write the database without encryption (not with keys)."
)
@json_option
def backup_command(
    home: Path,
    out: Path,
    with_keys: bool,
    passphrase_file: Path | None,
    recipient: str | None,
    unencrypted: bool,
    as_json: bool,
) -> None:
    """Back up the node home to one file, while the node runs: a consistent database copy."""
    from node.flows.backups import make_backup  # noqa: PLC0415 - the store only when it runs
    from node.store.backup import Protection  # noqa: PLC0415

    chosen = [o for o in (passphrase_file, recipient) if o is not None]
    if len(chosen) + unencrypted != 1:
        fail("choose one of --passphrase-file, --recipient or --unencrypted")
    if passphrase_file is not None:
        protection = Protection(
            "passphrase", passphrase=_read_secret(passphrase_file, "passphrase file")
        )
    elif recipient is not None:
        protection = Protection("recipient", recipient=_hex_key(recipient, "--recipient"))
    else:
        protection = Protection("none")
    header = make_backup(
        home, out, with_keys=with_keys, protection=protection, now=SYSTEM_CLOCK.now()
    )
    if as_json:
        print_json(header)
        return
    keys = "with keys" if with_keys else "without keys"
    click.echo(
        f"wrote {out}: node {header['node_id']}, log of {header['log_size']} entries,"
        f" {keys}, encryption {header['encryption']}"
    )


@main.command("restore")
@home_option
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--passphrase-file", type=_FILE, help="The passphrase the backup was made with.")
@click.option(
    "--identity-file",
    type=_FILE,
    help="The X25519 private key (64 hex digits) of the backup's recipient.",
)
@click.option(
    "--force", is_flag=True, help="Replace the home's database (kept beside as node.db.replaced-…)."
)
@json_option
def restore_command(
    home: Path,
    archive: Path,
    passphrase_file: Path | None,
    identity_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Restore a backup into the node home; the node's next start asks its peers first."""
    from node.flows.backups import check_not_running, restore_backup  # noqa: PLC0415
    from node.store.backup import Protection  # noqa: PLC0415

    protection = Protection(
        "none",
        passphrase=None
        if passphrase_file is None
        else _read_secret(passphrase_file, "passphrase file"),
        identity=None
        if identity_file is None
        else _hex_key(
            _read_secret(identity_file, "identity file").decode("ascii", "replace"),
            "the identity file",
        ),
    )
    if (home.expanduser() / "node.toml").exists():
        check_not_running(home)
    done = restore_backup(archive, home, protection=protection, force=force, now=SYSTEM_CLOCK.now())
    if as_json:
        print_json(done)
        return
    click.echo(
        f"restored node {done['node_id']} ({done['log_size']} log entries) into {done['home']}"
    )
    if done["replaced"]:
        click.echo(f"the replaced database is kept as {done['replaced']}")
    click.echo(
        "on its next start the node asks its peers which of its heads they hold before it"
        " signs anything; a new log epoch follows if they hold more (docs/protocol.md §9.7)"
    )


@main.command("backup-key")
@click.argument("identity_file", type=_FILE)
def backup_key(identity_file: Path) -> None:
    """Make an X25519 key pair for encrypted backups; print the public key."""
    import nacl.public  # noqa: PLC0415

    path = identity_file.expanduser()
    key = nacl.public.PrivateKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{path} exists; refusing to overwrite a key")
    with os.fdopen(fd, "w") as f:
        f.write(bytes(key).hex() + "\n")
    click.echo(bytes(key.public_key).hex())

"""Backing up a node home and restoring it (``vhnode backup``, ``vhnode restore``;
docs/operations.md "Backup and restore", docs/protocol.md §9.7).

The file format and its encryption are ``node.store.backup``'s. Restoring puts the
backup's database in place of the home's — never beside a different node's keys — and
leaves it marked: the node's next start asks its peers which of its heads they hold
before it signs anything (``node.flows.restore_check``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from node.config import (
    CONFIG_FILE,
    DB_FILE,
    DB_SIDE_FILES,
    KEYS_DIR,
    PRIVATE_FILE_MODE,
    load_config,
    make_private_dir,
)
from node.errors import ConfigError
from node.keys import NodeKeys
from node.protocol.models import rfc3339
from node.store import backup, db, log
from node.store.backup import BackupError, Protection
from node.store.db import tx


def make_backup(
    home: Path, out: Path, *, with_keys: bool, protection: Protection, now: datetime
) -> dict[str, Any]:
    """Write a backup of the node home ``home`` to ``out``; its header."""
    home = home.expanduser()
    cfg = load_config(home)
    return backup.write_backup(
        home, out, node_id=cfg.node_id, with_keys=with_keys, protection=protection, now=now
    )


def restore_backup(
    archive: Path, home: Path, *, protection: Protection, force: bool, now: datetime
) -> dict[str, Any]:
    """Restore ``archive`` into ``home``: a home that does not exist yet is made from the
    backup (which then must hold the keys); an existing database is replaced only with
    ``force`` and kept beside as ``node.db.replaced-<time>``. Returns the backup's header
    and where the replaced database went.

    The caller makes sure the node is not running (``vhnode restore`` refuses when the
    node's address answers)."""
    home = home.expanduser()
    with backup.opened(archive, protection) as (header, tar_path):
        files = backup.small_files(tar_path)
        if (home / DB_FILE).exists() and not force:
            raise ConfigError(
                f"{home} already holds a node database; add --force to replace it"
                " (the current one is kept beside it)"
            )
        if not (home / CONFIG_FILE).exists():
            if CONFIG_FILE not in files or f"{KEYS_DIR}/signing.key" not in files:
                raise ConfigError(
                    f"{home} is not a node home and the backup holds no keys to make one:"
                    " restore a backup made with --with-keys, or into the node's own home"
                )
            make_private_dir(home)
        for name, data in files.items():
            _place(home, name, data)
        cfg = load_config(home)
        if header.get("node_id") != cfg.node_id:
            raise ConfigError(
                f"the backup is of node {header.get('node_id')!r}, {home} holds {cfg.node_id!r}"
            )
        keys = NodeKeys.load(home / KEYS_DIR)
        staged = home / f"{DB_FILE}.restoring"
        for suffix in ("", *DB_SIDE_FILES):
            backup.remove_quietly(Path(f"{staged}{suffix}"))
        backup.extract_database(tar_path, staged)
        try:
            backup.check_database(staged)
            _check_log(staged, cfg.node_id, keys)
        except BaseException:
            for suffix in ("", *DB_SIDE_FILES):
                backup.remove_quietly(Path(f"{staged}{suffix}"))
            raise
        replaced = _set_aside(home, now)
        os.replace(staged, home / DB_FILE)
    return {**header, "home": str(home), "replaced": replaced}


def _place(home: Path, name: str, data: bytes) -> None:
    """Write a config, card or key file from the backup; an existing one must be equal
    (a restore never swaps a node's keys or identity behind the admin's back)."""
    path = home / name
    if path.exists():
        if path.read_bytes() != data:
            what = "key file" if name.startswith(KEYS_DIR) else "file"
            raise ConfigError(
                f"{path} differs from the backup's {what}; restore into the node's own home"
                " or move it away first"
            )
        return
    if name.startswith(f"{KEYS_DIR}/"):
        make_private_dir(home / KEYS_DIR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _check_log(path: Path, node_id: str, keys: NodeKeys) -> None:
    """The restored log must be this node's, signed by these keys, and marked restored."""
    conn = db.connect(path, keys)
    try:
        problem = log.check_tip(conn, node_id, keys.signing_public)
        if problem is not None:
            raise BackupError(
                f"the backup's log does not check out with {node_id}'s keys: {problem}"
            )
        with tx(conn):
            # A copy made by vhnode backup is marked already; any other is marked here.
            log.mark_restore_pending(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in DB_SIDE_FILES:
        backup.remove_quietly(Path(f"{path}{suffix}"))


def _set_aside(home: Path, now: datetime) -> str | None:
    current = home / DB_FILE
    if not current.exists():
        return None
    stamp = rfc3339(now).replace(":", "")
    aside = home / f"{DB_FILE}.replaced-{stamp}"
    for suffix in ("", *DB_SIDE_FILES):
        source = Path(f"{current}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{aside}{suffix}"))
    return str(aside)


def check_not_running(home: Path) -> None:
    """ConfigError if something answers at the node's configured address: a database is
    never replaced under a running node."""
    import socket  # noqa: PLC0415 - only restore probes the address

    cfg = load_config(home.expanduser())
    host = cfg.http.host if cfg.http.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    try:
        with socket.create_connection((host, cfg.http.port), timeout=1.0):
            pass
    except OSError:
        return
    raise ConfigError(
        f"the node at {home} seems to be running (something answers at {host}:{cfg.http.port});"
        " stop it first"
    )

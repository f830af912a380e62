"""Backups (docs/operations.md "Backup and restore"): what a backup of a busy node costs.

Run as ``python bench/bench_backup.py`` (a log of 200,000 entries, about a minute) or
``--quick`` (20,000). Everything goes to real SQLite files opened the way the node opens
them (``node.store.db.connect``: WAL, synchronous=NORMAL) in a temporary directory,
removed afterwards.

Printed, each beside the bound measured in the same run:

* the database copy (``backup.copy_database``: SQLite's online backup API, all pages in
  one step, then the restore mark). Bound: copying the same file with ``shutil.copyfile``;
* the whole backup file encrypted to a recipient (copy, tar, XChaCha20-Poly1305
  secretstream). Bound: the copy above plus reading and writing the tar once more;
* Argon2id at the cost backups use (3 passes, 256 MiB): a fixed price per backup and per
  restore with a passphrase, what makes an offline guess cost as much;
* appends per second of a writer appending one-entry commit groups while a backup runs,
  beside the same writer without a backup: the copy must not hold the node's writes up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import nacl.public
import nacl.pwhash
import nacl.utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.keys import NodeKeys
from node.store import backup, db, log

NODE = "bench-node"


def build(path: Path, keys: NodeKeys, entries: int) -> None:
    conn = db.connect(path, keys)
    now = datetime.now(UTC)
    group = 1000
    for start in range(0, entries, group):
        with db.tx(conn):
            log.append(
                conn,
                keys.signing,
                NODE,
                [
                    log.LogEntry(kind="bench.entry", purpose="bench", data={"n": start + i})
                    for i in range(min(group, entries - start))
                ],
                now,
            )
    conn.close()


def appends_per_second(path: Path, keys: NodeKeys, seconds: float) -> float:
    """One-entry commit groups (one signed head each), as a node answering requests."""
    conn = db.connect(path, keys, migrate=False)
    done = 0
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            with db.tx(conn):
                log.append(
                    conn, keys.signing, NODE, [log.LogEntry(kind="bench.write")], datetime.now(UTC)
                )
            done += 1
    finally:
        conn.close()
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 entries instead of 200,000")
    args = parser.parse_args()
    entries = 20_000 if args.quick else 200_000
    keys = NodeKeys.generate()
    with tempfile.TemporaryDirectory(prefix="vhnode-bench-backup-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir(mode=0o700)
        (home / "node.toml").write_text(f'node_id = "{NODE}"\n')
        keys.save(home / "keys")
        source = home / "node.db"
        t = time.perf_counter()
        build(source, keys, entries)
        mib = source.stat().st_size / 2**20
        print(
            f"log of {entries:,} entries: {mib:.1f} MiB, built in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        shutil.copyfile(source, work / "plain.db")
        bound_copy = time.perf_counter() - t
        t = time.perf_counter()
        backup.copy_database(source, work / "copy.db")
        copy = time.perf_counter() - t
        print(
            f"database copy (online backup API): {copy * 1000:.0f} ms, {mib / copy:.0f} MiB/s;"
            f" bound, shutil.copyfile of the same file: {bound_copy * 1000:.0f} ms"
        )

        recipient = nacl.public.PrivateKey.generate()
        protection = backup.Protection("recipient", recipient=bytes(recipient.public_key))
        t = time.perf_counter()
        backup.write_backup(
            home,
            work / "b.vhbackup",
            node_id=NODE,
            with_keys=False,
            protection=protection,
            now=datetime.now(UTC),
        )
        whole = time.perf_counter() - t
        t = time.perf_counter()
        shutil.copyfile(work / "copy.db", work / "again.tar")
        with (work / "again.tar").open("rb") as f:
            while f.read(1 << 20):
                pass
        bound_whole = copy + (time.perf_counter() - t)
        size = (work / "b.vhbackup").stat().st_size / 2**20
        print(
            f"backup file encrypted to a recipient: {whole * 1000:.0f} ms ({size:.1f} MiB);"
            f" bound, the copy plus the tar written and read once: {bound_whole * 1000:.0f} ms"
        )

        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        t = time.perf_counter()
        nacl.pwhash.argon2id.kdf(
            32, b"passphrase", salt, opslimit=backup.OPSLIMIT, memlimit=backup.MEMLIMIT
        )
        print(
            f"Argon2id (opslimit {backup.OPSLIMIT}, memlimit {backup.MEMLIMIT >> 20} MiB):"
            f" {(time.perf_counter() - t) * 1000:.0f} ms per backup or restore with a passphrase"
        )

        quiet = appends_per_second(source, keys, 2.0)
        stop = threading.Event()
        copies = 0

        def keep_copying() -> None:
            nonlocal copies
            while not stop.is_set():
                dest = work / f"busy-{copies}.db"
                backup.copy_database(source, dest)
                os.unlink(dest)
                copies += 1

        copier = threading.Thread(target=keep_copying)
        copier.start()
        try:
            busy = appends_per_second(source, keys, 2.0)
        finally:
            stop.set()
            copier.join()
        print(
            f"appends/s (one entry, one signed head, one COMMIT each) while backups run"
            f" back to back: {busy:,.0f} ({copies} copies made); bound, the same writer"
            f" without a backup: {quiet:,.0f}"
        )


if __name__ == "__main__":
    main()

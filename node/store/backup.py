"""Backups of a node home, and restoring them (docs/operations.md "Backup and restore").

A backup is one file: a header line, then a tar of the home's database copy, its
``node.toml`` and ``card.json`` and, with ``with_keys``, its key files — encrypted to a
passphrase or to an X25519 recipient key unless the admin asked for none.

- The database is copied with SQLite's online backup API while the node serves: one read
  transaction, so the copy is one consistent state of the log and everything it records,
  and the node's writer is not held up (WAL). The copy is marked as restored
  (``log.mark_restore_pending``): a node started on it signs no tree head before it has
  learned which heads its peers hold (docs/protocol.md §9.7).
- Encryption: libsodium's XChaCha20-Poly1305 secretstream in 1 MiB chunks (truncation
  and reordering show as a failed final tag), the header line bound to the first chunk
  as additional data. The stream key comes from the passphrase by Argon2id (parameters
  and salt in the header) or is sealed to the recipient's X25519 public key
  (``SealedBox``), so the machine making backups need not hold what opens them.

Format (version 1)::

    "VHNODE-BACKUP 1\\n"  JSON header line  "\\n"  body

The header says which case applies; the body is the tar, plain or as a secretstream
(24-byte stream header, then chunks).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import nacl.bindings as sodium
import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.utils

from node.config import CARD_FILE, CONFIG_FILE, DB_FILE, KEYS_DIR, PRIVATE_FILE_MODE
from node.errors import ConfigError, InputError, VhnodeError
from node.protocol import jws
from node.protocol.models import rfc3339
from node.store import log

MAGIC = b"VHNODE-BACKUP 1\n"
FORMAT_VERSION = 1
KEY_FILES = ("signing.key", "encryption.key", "oprf.seed")
CHUNK = 1 << 20
_MAX_HEADER = 64 * 1024
# Argon2id at libsodium's "moderate" cost (3 passes, 256 MiB): a backup is a file an
# attacker can try passphrases against offline for as long as they like.
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
# What a header may ask of the machine that restores: bounded, so a crafted file cannot
# make it spend gigabytes.
_MAX_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
_MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE

Encryption = Literal["none", "passphrase", "recipient"]
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES


class BackupError(VhnodeError):
    code = "invalid_input"
    title = "Backup file refused"


@dataclass(frozen=True)
class Protection:
    """How a backup is encrypted: to a passphrase, to a recipient public key, or not."""

    kind: Encryption
    passphrase: bytes | None = None
    recipient: bytes | None = None
    """X25519 public key (32 bytes)."""
    identity: bytes | None = None
    """X25519 private key that opens a recipient backup (32 bytes)."""


# --- the database copy -----------------------------------------------------------------


def copy_database(source: Path, dest: Path) -> dict[str, Any]:
    """A consistent copy of the node database at ``source`` in ``dest`` (mode 0600),
    marked as restored; returns what it holds (schema step, log size, newest head).

    Reads through its own connection (SQLite's online backup API, all pages in one step:
    one read transaction, so one state), never through the node's writer."""
    if not source.is_file():
        raise ConfigError(f"no database at {source}; is this a node home?")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    os.close(fd)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30.0)
    try:
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(dst)
            # One self-contained file, without the WAL companions.
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.execute("BEGIN IMMEDIATE")
            log.mark_restore_pending(dst)
            dst.execute("COMMIT")
            head = log.latest_head(dst)
            step = int(dst.execute("PRAGMA user_version").fetchone()[0])
            size = log.size(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return {
        "schema_step": step,
        "log_size": size,
        "tree_size": None if head is None else head.tree_size,
        "epoch": None if head is None else head.epoch,
    }


# --- writing a backup file -------------------------------------------------------------


def write_backup(
    home: Path, out: Path, *, node_id: str, with_keys: bool, protection: Protection, now: datetime
) -> dict[str, Any]:
    """Make the backup file ``out`` (mode 0600, written next to it and renamed into
    place) of the node home ``home``; returns its header."""
    if with_keys and protection.kind == "none":
        raise InputError("key files leave the node only encrypted: give a passphrase or recipient")
    if out.exists():
        raise InputError(f"{out} exists; refusing to overwrite a backup")
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: the folder {out.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix=".vhnode-backup-", dir=out.parent) as tmp:
        work = Path(tmp)
        facts = copy_database(home / DB_FILE, work / DB_FILE)
        tar_path = work / "body.tar"
        with tarfile.open(tar_path, "w") as tar:
            _add(tar, work / DB_FILE, DB_FILE)
            for name in (CONFIG_FILE, CARD_FILE):
                if (home / name).is_file():
                    _add(tar, home / name, name)
            if with_keys:
                for name in KEY_FILES:
                    _add(tar, home / KEYS_DIR / name, f"{KEYS_DIR}/{name}")
        header: dict[str, Any] = {
            "format": "vhnode-backup",
            "version": FORMAT_VERSION,
            "node_id": node_id,
            "created_at": rfc3339(now),
            "with_keys": with_keys,
            "encryption": protection.kind,
            **facts,
        }
        key: bytes | None = None
        if protection.kind == "passphrase":
            assert protection.passphrase is not None
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            header["kdf"] = {
                "name": "argon2id",
                "opslimit": OPSLIMIT,
                "memlimit": MEMLIMIT,
                "salt": jws.b64u_encode(salt),
            }
            key = _derive(protection.passphrase, salt, OPSLIMIT, MEMLIMIT)
        elif protection.kind == "recipient":
            assert protection.recipient is not None
            key = nacl.utils.random(32)
            box = nacl.public.SealedBox(nacl.public.PublicKey(protection.recipient))
            header["recipient"] = jws.b64u_encode(protection.recipient)
            header["sealed_key"] = jws.b64u_encode(box.encrypt(key))
        else:
            header["sha256"] = _sha256(tar_path)
        head_line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        part = work / "backup.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as f, tar_path.open("rb") as body:
            f.write(MAGIC + head_line)
            if key is None:
                shutil.copyfileobj(body, f)
            else:
                _encrypt(body, f, key, MAGIC + head_line)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    return header


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = PRIVATE_FILE_MODE
    with path.open("rb") as f:
        tar.addfile(info, f)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _derive(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    key: bytes = nacl.pwhash.argon2id.kdf(
        32, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )
    return key


def _encrypt(body: IO[bytes], out: IO[bytes], key: bytes, header: bytes) -> None:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    out.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key))
    ad: bytes | None = header  # binds the header line to the first chunk
    chunk = body.read(CHUNK)
    while True:
        following = body.read(CHUNK)
        tag = _TAG_FINAL if not following else _TAG_MESSAGE
        out.write(sodium.crypto_secretstream_xchacha20poly1305_push(state, chunk, ad, tag))
        ad = None
        if not following:
            return
        chunk = following


# --- reading a backup file -------------------------------------------------------------


def read_header(path: Path) -> dict[str, Any]:
    """The header of the backup file at ``path`` (not yet authenticated when encrypted)."""
    with path.open("rb") as f:
        header, _ = _header(f)
    return header


def _header(f: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError("not a vhnode backup file (or a newer format than this vhnode reads)")
    line = f.readline(_MAX_HEADER)
    if not line.endswith(b"\n"):
        raise BackupError("the backup file's header is cut off")
    try:
        header = json.loads(line)
    except ValueError as e:
        raise BackupError("the backup file's header is not JSON") from e
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        raise BackupError("unsupported backup format version")
    if header.get("encryption") not in ("none", "passphrase", "recipient"):
        raise BackupError("unknown encryption in the backup file's header")
    return header, MAGIC + line


@contextmanager
def opened(path: Path, protection: Protection) -> Iterator[tuple[dict[str, Any], Path]]:
    """The header and the decrypted tar of the backup at ``path``, in a private temporary
    folder removed afterwards. Raises BackupError for a wrong passphrase or key, a
    damaged or cut-off file."""
    with path.open("rb") as f, tempfile.TemporaryDirectory(prefix=".vhnode-restore-") as tmp:
        header, head_bytes = _header(f)
        tar_path = Path(tmp) / "body.tar"
        fd = os.open(tar_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            kind = header["encryption"]
            if kind == "none":
                shutil.copyfileobj(f, out)
            else:
                _decrypt(f, out, _key(header, protection), head_bytes)
        if kind == "none" and _sha256(tar_path) != header.get("sha256"):
            raise BackupError("the backup file is damaged: its contents do not match its digest")
        yield header, tar_path


def _key(header: dict[str, Any], protection: Protection) -> bytes:
    kind = header["encryption"]
    try:
        if kind == "passphrase":
            if protection.passphrase is None:
                raise BackupError(
                    "this backup is encrypted to a passphrase: give --passphrase-file"
                )
            kdf = header["kdf"]
            ops, mem = int(kdf["opslimit"]), int(kdf["memlimit"])
            if kdf["name"] != "argon2id" or not (
                0 < ops <= _MAX_OPSLIMIT and 0 < mem <= _MAX_MEMLIMIT
            ):
                raise BackupError("the backup file's key derivation parameters are not accepted")
            return _derive(protection.passphrase, jws.b64u_decode(kdf["salt"]), ops, mem)
        if protection.identity is None:
            raise BackupError("this backup is encrypted to a recipient key: give --identity-file")
        private = nacl.public.PrivateKey(protection.identity)
        if jws.b64u_encode(bytes(private.public_key)) != header.get("recipient"):
            raise BackupError("this backup is encrypted to another recipient key")
        key: bytes = nacl.public.SealedBox(private).decrypt(jws.b64u_decode(header["sealed_key"]))
    except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as e:
        raise BackupError("the backup file's key cannot be opened with this key") from e
    return key


def _decrypt(f: IO[bytes], out: IO[bytes], key: bytes, header: bytes) -> None:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = f.read(sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, key)
        ad: bytes | None = header
        while True:
            chunk = f.read(CHUNK + _ABYTES)
            if not chunk:
                raise BackupError("the backup file is cut off")
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, chunk, ad)
            ad = None
            out.write(plain)
            if tag == _TAG_FINAL:
                if f.read(1):
                    raise BackupError("the backup file has data past its end")
                return
    except nacl.exceptions.CryptoError as e:
        raise BackupError(
            "cannot decrypt the backup: wrong passphrase or key, or the file is damaged"
        ) from e


def small_files(tar_path: Path) -> dict[str, bytes]:
    """The backup's files other than the database (config, card, keys), by name; refuses
    a tar with anything a restore does not take, or without a database."""
    allowed = {DB_FILE, CONFIG_FILE, CARD_FILE} | {f"{KEYS_DIR}/{n}" for n in KEY_FILES}
    found: dict[str, bytes] = {}
    has_db = False
    with tarfile.open(tar_path, "r") as tar:
        for info in tar.getmembers():
            if info.name not in allowed or not info.isfile():
                raise BackupError(f"the backup holds an unexpected entry {info.name!r}")
            if info.name == DB_FILE:
                has_db = True
                continue
            data = tar.extractfile(info)
            assert data is not None
            found[info.name] = data.read()
    if not has_db:
        raise BackupError("the backup holds no database")
    return found


def extract_database(tar_path: Path, dest: Path) -> None:
    """Write the backup's database to ``dest`` (mode 0600, must not exist)."""
    with tarfile.open(tar_path, "r") as tar:
        data = tar.extractfile(DB_FILE)
        if data is None:
            raise BackupError("the backup holds no database")
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(data, out)
            out.flush()
            os.fsync(out.fileno())


def check_database(path: Path) -> None:
    """Refuse a restored database file SQLite does not find intact."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise BackupError(f"the backup's database is not a SQLite database: {e}") from e
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"the backup's database is damaged: {result}")


def remove_quietly(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()

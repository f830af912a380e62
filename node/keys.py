"""The node's secret keys, kept as files with mode 0600 in ``<home>/keys/``.

- ``signing.key``: Ed25519 seed (32 bytes, hex). Signs peer card, messages, log heads.
- ``encryption.key``: X25519 private key (hex). Receives end-to-end encrypted details.
- ``oprf.seed``: OPRF master secret (hex). The per-convenant OPRF keys and the log's
  pseudonym key are derived from it (docs/protocol.md §6.1, §9.2).
- ``retired/signing-<fingerprint>.pub``: the public half of each signing key this node
  rotated away from (``vhnode keys rotate``, §4.1.1): its own log heads signed before the
  rotation still verify. The old seed is not kept: nothing needs to sign with it again.

Symmetric keys are derived with HKDF-SHA-256 (RFC 5869), one ``info`` label per use.
Release 0.1.0 derived them as HMAC-SHA-256(secret, label); those legacy keys remain
derivable for what was made with them (docs/adr/0003-migrations-and-key-derivation.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, replace
from pathlib import Path

import nacl.public
import nacl.signing
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.errors import ConfigError
from node.protocol import oprf
from node.protocol.jws import fingerprint

OPRF_KEY_INFO_PREFIX = b"vhnode/v1 convenant "
PSEUDONYM_KEY_INFO = b"vhnode/v1 hkdf log pseudonym key"
AT_REST_KEY_INFO = b"vhnode/v1 hkdf details at rest"
SECOND_FACTOR_KEY_INFO = b"vhnode/v1 hkdf second factor at rest"
WEB_FORM_KEY_INFO = b"vhnode/v1 hkdf web form tokens"
LEGACY_PSEUDONYM_KEY_INFO = b"vhnode/v1 log pseudonym key"
LEGACY_AT_REST_KEY_INFO = b"vhnode/v1 details at rest"
RETIRED_DIR = "retired"


def oprf_key_info(convenant_id: str, epoch: int) -> bytes:
    """DeriveKeyPair's ``info`` for a convenant's key in one epoch (docs/protocol.md §6.1.1)."""
    if epoch < 0:
        raise ValueError("OPRF key epochs count from 0")
    info = OPRF_KEY_INFO_PREFIX + convenant_id.encode()
    return info if epoch == 0 else info + b" epoch " + str(epoch).encode("ascii")


def hkdf_sha256(secret: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA-256 without salt: the secrets are uniformly random already
    (RFC 5869 §3.1), so extract needs none; ``info`` separates the uses."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


@dataclass(frozen=True)
class NodeKeys:
    signing: nacl.signing.SigningKey
    encryption: nacl.public.PrivateKey
    oprf_seed: bytes
    # Public keys of the signing keys this node used before (§4.1.1).
    retired_signing: tuple[bytes, ...] = ()

    @property
    def signing_public(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def signing_history(self) -> dict[str, bytes]:
        """Fingerprint → public key of every signing key this node has had, the current
        one included: its own log's heads are signed by whichever was current then."""
        keys = {fingerprint(k): k for k in self.retired_signing}
        keys[self.signing_fingerprint] = self.signing_public
        return keys

    @property
    def encryption_public(self) -> bytes:
        return bytes(self.encryption.public_key)

    @property
    def signing_fingerprint(self) -> str:
        return fingerprint(self.signing_public)

    @property
    def encryption_fingerprint(self) -> str:
        return fingerprint(self.encryption_public)

    def oprf_key(self, convenant_id: str, epoch: int) -> tuple[bytes, bytes]:
        """(skS, pkS) of this node's OPRF key for one convenant in one key epoch (RFC 9497
        DeriveKeyPair, docs/protocol.md §6.1.1). Epoch 0 is the key of the versions before
        epochs, so a node that upgrades keeps its tags until its first change."""
        return oprf.derive_key_pair(self.oprf_seed, oprf_key_info(convenant_id, epoch))

    def pseudonym_key(self) -> bytes:
        """The key of the log's pseudonyms (docs/protocol.md §9.2)."""
        return hkdf_sha256(self.oprf_seed, PSEUDONYM_KEY_INFO)

    def at_rest_key(self) -> bytes:
        """The key received detail is encrypted under at rest (docs/protocol.md §14.8)."""
        return hkdf_sha256(bytes(self.encryption), AT_REST_KEY_INFO)

    def second_factor_key(self) -> bytes:
        """The key users' TOTP secrets are sealed under at rest (docs/webapp.md): a copy
        of node.db without the key files yields no second factor."""
        return hkdf_sha256(bytes(self.encryption), SECOND_FACTOR_KEY_INFO)

    def web_form_key(self) -> bytes:
        """The key of the web application's CSRF tokens (docs/webapp.md): derived, so a
        form stays valid across a restart of the node."""
        return hkdf_sha256(self.oprf_seed, WEB_FORM_KEY_INFO)

    def legacy_pseudonym_key(self) -> bytes:
        """Release 0.1.0's pseudonym key: entries it signed keep their pseudonyms, so an
        access request at an upgraded node looks for both (node/flows/audit/inzage.py)."""
        return hmac.new(self.oprf_seed, LEGACY_PSEUDONYM_KEY_INFO, hashlib.sha256).digest()

    def legacy_at_rest_key(self) -> bytes:
        """Release 0.1.0's at-rest key; only the migration that re-encrypts uses it."""
        return hmac.new(bytes(self.encryption), LEGACY_AT_REST_KEY_INFO, hashlib.sha256).digest()

    @classmethod
    def generate(cls) -> NodeKeys:
        return cls(
            signing=nacl.signing.SigningKey.generate(),
            encryption=nacl.public.PrivateKey.generate(),
            oprf_seed=os.urandom(32),
        )

    def save(self, directory: Path) -> None:
        """Write the three key files with mode 0600; refuses to overwrite existing keys."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = {
            "signing.key": bytes(self.signing),
            "encryption.key": bytes(self.encryption),
            "oprf.seed": self.oprf_seed,
        }
        for name in files:
            if (directory / name).exists():
                raise ConfigError(f"{directory / name} exists; refusing to overwrite a key")
        for name, raw in files.items():
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(raw.hex() + "\n")

    def rotate_signing(self, directory: Path, new: nacl.signing.SigningKey) -> NodeKeys:
        """Make ``new`` this node's signing key in ``directory``: the current key's public
        half is kept under ``retired/`` first, then ``signing.key`` is replaced in one
        rename, so a crash leaves either key whole, never half a file."""
        retired = directory / RETIRED_DIR
        retired.mkdir(mode=0o700, exist_ok=True)
        kept = retired / f"signing-{self.signing_fingerprint}.pub"
        if not kept.exists():  # kept by a rotation that stopped before the rename
            _write_private(kept, self.signing_public)
        tmp = directory / "signing.key.tmp"
        tmp.unlink(missing_ok=True)
        _write_private(tmp, bytes(new))
        os.replace(tmp, directory / "signing.key")
        return replace(
            self, signing=new, retired_signing=(*self.retired_signing, self.signing_public)
        )

    @classmethod
    def load(cls, directory: Path) -> NodeKeys:
        def read(name: str) -> bytes:
            path = directory / name
            try:
                raw = bytes.fromhex(path.read_text().strip())
            except FileNotFoundError as e:
                raise ConfigError(f"missing key file {path}; run 'vhnode init' first") from e
            except ValueError as e:
                raise ConfigError(f"key file {path} is not hex") from e
            if len(raw) != 32:
                raise ConfigError(f"key file {path} must hold 32 bytes")
            if path.stat().st_mode & 0o077:
                raise ConfigError(f"key file {path} is readable by others; chmod 600 it")
            return raw

        retired_dir = directory / RETIRED_DIR
        retired = sorted(retired_dir.glob("signing-*.pub")) if retired_dir.is_dir() else []
        return cls(
            signing=nacl.signing.SigningKey(read("signing.key")),
            encryption=nacl.public.PrivateKey(read("encryption.key")),
            oprf_seed=read("oprf.seed"),
            retired_signing=tuple(read(f"{RETIRED_DIR}/{p.name}") for p in retired),
        )


def _write_private(path: Path, raw: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(raw.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())

"""The node's secret keys, kept as files with mode 0600 in ``<home>/keys/``.

- ``signing.key``: Ed25519 seed (32 bytes, hex). Signs peer card, messages, log heads.
- ``encryption.key``: X25519 private key (hex). Receives end-to-end encrypted details.
- ``oprf.seed``: OPRF master secret (hex). The per-convenant OPRF keys and the log's
  pseudonym key are derived from it (docs/protocol.md §6.1, §9.2).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import nacl.public
import nacl.signing

from node.errors import ConfigError
from node.protocol import oprf
from node.protocol.jws import fingerprint

OPRF_KEY_INFO_PREFIX = b"vhnode/v1 convenant "
PSEUDONYM_KEY_INFO = b"vhnode/v1 log pseudonym key"


@dataclass(frozen=True)
class NodeKeys:
    signing: nacl.signing.SigningKey
    encryption: nacl.public.PrivateKey
    oprf_seed: bytes

    @property
    def signing_public(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def encryption_public(self) -> bytes:
        return bytes(self.encryption.public_key)

    @property
    def signing_fingerprint(self) -> str:
        return fingerprint(self.signing_public)

    @property
    def encryption_fingerprint(self) -> str:
        return fingerprint(self.encryption_public)

    def oprf_key(self, convenant_id: str) -> tuple[bytes, bytes]:
        """(skS, pkS) of this node's OPRF key for one convenant (RFC 9497 DeriveKeyPair)."""
        return oprf.derive_key_pair(self.oprf_seed, OPRF_KEY_INFO_PREFIX + convenant_id.encode())

    def pseudonym_key(self) -> bytes:
        return hmac.new(self.oprf_seed, PSEUDONYM_KEY_INFO, hashlib.sha256).digest()

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

        return cls(
            signing=nacl.signing.SigningKey(read("signing.key")),
            encryption=nacl.public.PrivateKey(read("encryption.key")),
            oprf_seed=read("oprf.seed"),
        )

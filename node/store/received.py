"""Requester side of the detail exchange (docs/protocol.md §14, §10): a round's hit
proofs, the detail requests sent, and the detail received (encrypted at rest)."""

from __future__ import annotations

SCHEMA = ""

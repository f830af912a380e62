"""Provider side of the detail exchange (docs/protocol.md §14, §10): requests, category
states, hit notices, and the tag → subject index that resolves a hit proof."""

from __future__ import annotations

SCHEMA = ""

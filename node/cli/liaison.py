"""``vhnode liaison``: the detail exchange (docs/protocol.md §14); commands added with it."""

from __future__ import annotations

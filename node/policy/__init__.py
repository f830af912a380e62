"""Convenant policy: pure decisions over installed convenants (docs/protocol.md §7)."""

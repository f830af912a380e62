"""SQLite storage: one database file per node (docs/protocol.md §10)."""

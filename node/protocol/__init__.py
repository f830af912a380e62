"""Wire protocol: messages, canonical encoding, signatures, OPRF, peer client (docs/protocol.md)."""

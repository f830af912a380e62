"""TLS and mutual TLS between peers (docs/protocol.md §12.3, docs/adr/0005).

A node's TLS certificate is on its peer card (v2, §4.1); what peers compare is the
SHA-256 of the certificate's key (its SubjectPublicKeyInfo), the *pin*. The standard
library's ``ssl`` has no verify callback, so:

- as a client, one context per partner trusts the certificate on the partner's card (or
  the configured CA) and checks the pin itself right after the handshake, before a byte
  of the request is sent (``PinnedObject``, the context's ``sslobject_class``);
- as a server, one context asks for a client certificate, trusts the certificates on the
  held cards (or the CA) so that a peer's handshake completes, and leaves the pin to the
  request: once the request's signer is known (§6.6 step 3) its card's pin must equal
  the key of the connection's client certificate (``PeerTransport``).

Certificate and key files are read when a context is built: at start-up, and for a new
partner card in a worker thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.config import PRIVATE_FILE_MODE, NodeConfig, TlsConfig, check_private
from node.errors import ConfigError
from node.protocol.peer_card import PeerCard, tls_key_fingerprint

CERT_FILE = "tls/cert.pem"
KEY_FILE = "tls/key.pem"
"""Where `vhnode init` puts a self-signed certificate and its key, under the home."""
SELF_SIGNED_DAYS = 825
"""A self-signed certificate's life: longer than the default card (730 days), so that a
card renewed on time always finds its certificate still valid."""


class PinMismatch(ssl.SSLCertVerificationError):
    """The partner's certificate is trusted but its key is not the one on its card."""


@dataclass(frozen=True)
class PeerTransport:
    """How a peer request reached this node: over TLS with a client certificate whose
    key has ``tls_key_fingerprint``, or not (``None``: plain HTTP, or TLS without a
    client certificate)."""

    tls_key_fingerprint: str | None

    @classmethod
    def of(cls, ssl_object: ssl.SSLObject | None) -> PeerTransport:
        der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
        return cls(None if der is None else tls_key_fingerprint(der))


PLAIN = PeerTransport(None)


def transport_refusal(
    card: PeerCard, transport: PeerTransport, allow_plain_http: bool
) -> str | None:
    """Why a request signed under ``card`` may not be taken over ``transport`` (§6.6
    step 3a), or None. A certificate other than the card's is always refused; no
    certificate at all only where the admin allows plain HTTP."""
    pin = card.tls_key_fingerprint
    got = transport.tls_key_fingerprint
    if got is not None and pin is not None:
        if got == pin:
            return None
        return (
            f"the connection's client certificate has key {got[:16]}…, the card of "
            f"{card.node_id} names {pin[:16]}…"
        )
    if allow_plain_http:
        return None
    if pin is None:
        return f"the card of {card.node_id} names no TLS key and this node allows no plain HTTP"
    if got is None:
        return "the request came without a client certificate (plain HTTP or TLS without one)"
    return None


# --- making a self-signed certificate ------------------------------------------------------


def self_signed(
    node_id: str, hosts: list[str], now: dt.datetime, days: int = SELF_SIGNED_DAYS
) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a new ECDSA P-256 key: P-256 rather than
    Ed25519 because every TLS 1.3 stack (OpenSSL, browsers, load balancers) takes it.
    Self-signed for ``node_id``, with ``hosts`` as subject alternative names."""
    key = ec.generate_private_key(ec.SECP256R1())
    return certificate_for(key, node_id, hosts, now, days), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_for(
    key: ec.EllipticCurvePrivateKey,
    node_id: str,
    hosts: list[str],
    now: dt.datetime,
    days: int = SELF_SIGNED_DAYS,
) -> bytes:
    """A self-signed certificate (PEM) for ``key``: a renewal keeps the key, so the pin
    on the card stays (docs/operations.md "Renew the certificate")."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, node_id]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def write_self_signed(home: Path, cfg: NodeConfig, now: dt.datetime) -> None:
    """Make the [tls] key (mode 0600) and a self-signed certificate for it at the paths
    node.toml names, for the endpoint's host and the peer listener's address."""
    tls = _required(cfg)
    host = cfg.endpoint.host
    cert_pem, key_pem = self_signed(cfg.node_id, [h for h in (host, tls.host) if h], now)
    key_file, cert_file = tls.path(home, tls.key_file), tls.path(home, tls.cert_file)
    for path in (key_file, cert_file):
        if path.exists():
            raise ConfigError(f"{path} exists; refusing to overwrite a TLS key or certificate")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Both 0600, as every file of the home: the certificate is public (it is on the
    # card), but one rule for the whole home is simpler to check than exceptions.
    for path, data in ((key_file, key_pem), (cert_file, cert_pem)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def renew_self_signed(home: Path, cfg: NodeConfig, now: dt.datetime, days: int) -> bytes:
    """Issue the node's self-signed certificate again for the same key (the pin stays);
    returns the new certificate's PEM, written over ``cert_file``."""
    tls = _required(cfg)
    key = _private_key(tls.path(home, tls.key_file))
    old = x509.load_pem_x509_certificate(tls.path(home, tls.cert_file).read_bytes())
    try:
        san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        hosts = []
    pem = certificate_for(key, cfg.node_id, hosts, now, days)
    tls.path(home, tls.cert_file).write_bytes(pem)
    return pem


def _private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: renewing a self-signed certificate needs an ECDSA key")
    return key


def _required(cfg: NodeConfig) -> TlsConfig:
    if cfg.tls is None:
        raise ConfigError("node.toml has no [tls] section: this node does not use TLS")
    return cfg.tls


# --- loading the node's own certificate ----------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """The node's TLS files, resolved and checked once (start-up, card issue)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None
    certificate_der: bytes
    """The leaf: what goes on the card."""

    @property
    def key_fingerprint(self) -> str:
        return tls_key_fingerprint(self.certificate_der)


def load_files(home: Path, tls: TlsConfig) -> TlsFiles:
    """Resolve and check the [tls] files: present, the key 0600 (as the other keys), the
    certificate the key's; ConfigError naming the file otherwise."""
    cert_file = tls.path(home, tls.cert_file)
    key_file = tls.path(home, tls.key_file)
    ca_file = None if tls.ca_file is None else tls.path(home, tls.ca_file)
    for what, path in (("tls.cert_file", cert_file), ("tls.key_file", key_file)):
        if not path.is_file():
            raise ConfigError(f"{what} {path} does not exist")
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"tls.ca_file {ca_file} does not exist")
    check_private(key_file, "tls.key_file")
    try:
        leaf = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    except ValueError as e:
        raise ConfigError(f"tls.cert_file {cert_file} holds no PEM certificate") from e
    try:  # the pair must match: a context would refuse it later with a vaguer message
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as e:
        raise ConfigError(
            f"tls.key_file {key_file} is not the key of tls.cert_file {cert_file}: {e}"
        ) from e
    return TlsFiles(cert_file, key_file, ca_file, leaf.public_bytes(serialization.Encoding.DER))


def certificate_der(home: Path, cfg: NodeConfig) -> bytes | None:
    """The certificate the node's card carries, or None without [tls]."""
    return None if cfg.tls is None else load_files(home, cfg.tls).certificate_der


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime


def describe(certificate_der: bytes) -> CertificateInfo:
    cert = x509.load_der_x509_certificate(certificate_der)
    return CertificateInfo(
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )


# --- contexts ---------------------------------------------------------------------------------


def _base(context: ssl.SSLContext, files: TlsFiles | None) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # both ends are vhnode nodes
    if files is not None:
        context.load_cert_chain(files.cert_file, files.key_file)
    return context


def server_context(files: TlsFiles, trusted: list[bytes]) -> ssl.SSLContext:
    """The peer listener's context: asks for a client certificate (optional at the
    handshake, so that the refusal is a signed answer naming the reason, §6.6 step 3a),
    trusting the CA, or else the certificates on the held cards (``trust_card``)."""
    context = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), files)
    context.verify_mode = ssl.CERT_OPTIONAL
    if files.ca_file is not None:
        context.load_verify_locations(cafile=files.ca_file)
    else:
        for der in trusted:
            trust_certificate(context, der)
    return context


def trust_certificate(context: ssl.SSLContext, der: bytes) -> None:
    """Let a self-signed peer certificate complete handshakes (in memory: no file read)."""
    context.load_verify_locations(cadata=der)


class PinnedObject(ssl.SSLObject):
    """The client's TLS session with one partner: the server certificate's key must be
    the one on the partner's card, and the certificate within its validity. In CA mode
    OpenSSL has verified the chain (and the dates) before; without a CA the pin is the
    trust: any certificate of that key, so one re-issued for the same key still serves
    (the handshake proved the server holds the key)."""

    pin: ClassVar[str]
    partner: ClassVar[str]
    check_dates: ClassVar[bool]

    def do_handshake(self) -> None:
        super().do_handshake()
        der = self.getpeercert(binary_form=True)
        got = None if der is None else tls_key_fingerprint(der)
        if der is None or got != self.pin:
            raise PinMismatch(
                f"the TLS certificate of {self.partner} has key {(got or 'none')[:16]}…, "
                f"its card names {self.pin[:16]}…"
            )
        if self.check_dates:
            cert = x509.load_der_x509_certificate(der)
            now = dt.datetime.now(dt.UTC)
            if now >= cert.not_valid_after_utc:
                raise PinMismatch(
                    f"certificate has expired: the TLS certificate of {self.partner} ended "
                    f"at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
                )
            if now < cert.not_valid_before_utc:
                raise PinMismatch(
                    f"certificate is not yet valid: the TLS certificate of {self.partner} "
                    f"starts at {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
                )


def client_context(files: TlsFiles | None, card: PeerCard) -> ssl.SSLContext:
    """A context for asking the partner of ``card`` (whose card names a TLS key):
    presents our certificate and checks the pin (``PinnedObject``); in CA mode OpenSSL
    also verifies the chain to the CA. No host name check: the pin is a stronger
    statement of who answers."""
    pin = card.tls_key_fingerprint
    if pin is None:
        raise ValueError("the partner's card names no TLS key")
    context = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), files)
    context.check_hostname = False
    ca_mode = files is not None and files.ca_file is not None
    if files is not None and files.ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=files.ca_file)
    else:
        # The pin is the trust: no chain to verify a self-signed certificate against
        # but the one on the card, which would refuse one re-issued for the same key.
        context.verify_mode = ssl.CERT_NONE
    attrs: dict[str, Any] = {"pin": pin, "partner": card.node_id, "check_dates": not ca_mode}
    context.sslobject_class = type("PinnedObject", (PinnedObject,), attrs)
    return context


def pem_to_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def fingerprint_of_pem(pem: bytes) -> str:
    return tls_key_fingerprint(pem_to_der(pem))


__all__ = ["PLAIN", "PeerTransport", "PinMismatch", "TlsFiles"]

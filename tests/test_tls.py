"""TLS and mutual TLS between peers (docs/protocol.md §12.3, §6.6 step 3a; issue 11 item 1).

Real nodes on 127.0.0.1 with real certificates made here with ``cryptography`` (the
node's own dependency, so no test-only package): self-signed as ``vhnode init`` makes
them, and CA-issued for the PKIoverheid-style mode. Each refusal is checked on the side
that refuses and by the status the requester reports.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from node import tls
from node.flows import admin
from node.protocol.peer_card import verify_card
from tests.federation import (
    DEFAULT_PARTIES,
    EVALUATE_PATH,
    PURPOSE,
    Federation,
    SimNode,
    convenant_toml,
    evaluate_request,
    free_port,
    jws_bytes,
    open_signed,
    partner_result,
    standard_federation,
    statuses,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
REG = {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def tls_federation(tmp_path: Path) -> AsyncIterator[Federation]:
    fed = await standard_federation(tmp_path, tls=True)
    try:
        yield fed
    finally:
        await fed.close()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _files(node: SimNode) -> tuple[Path, Path]:
    cfg = node.ctx.cfg.tls
    assert cfg is not None
    return cfg.path(node.home, cfg.cert_file), cfg.path(node.home, cfg.key_file)


async def _serve_certificate(
    fed: Federation, node: SimNode, cert_pem: bytes, key_pem: bytes
) -> None:
    """Restart ``node``'s listeners with another certificate (and key) than its card names."""
    cert_file, key_file = _files(node)
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    await fed.stop(node.node_id)
    cfg = node.ctx.cfg.tls
    assert cfg is not None
    node.ctx.tls_files = tls.load_files(node.home, cfg)
    node.ctx._tls_server = None
    node.ctx._tls_trusted.clear()
    node.ctx._tls_clients.clear()
    await fed.start(node.node_id)


# --- accepted -----------------------------------------------------------------------------


async def test_round_over_mutual_tls(tls_federation: Federation) -> None:
    fed = tls_federation
    vh, politie = fed.nodes["vh-test"], fed.nodes["politie-test"]
    card, doc = verify_card(politie.card_json())
    assert doc.typ == "vhnode-peer-card/v2"
    assert card.endpoint_url.startswith("https://")
    assert card.tls_key_fingerprint == politie.ctx.tls_files.key_fingerprint  # type: ignore[union-attr]
    fed.register("politie-test", REG)
    result = await fed.query("vh-test", [JAN_BSN])
    assert statuses(result) == {
        "vh-test": "no_hit",
        "politie-test": "hit",
        "om-test": "no_hit",
        "ggz-test": "no_hit",
    }
    # The peer listener serves /peer/ only; the local API stays on the loopback listener.
    assert fed.session is not None
    context = await vh.ctx.peer_ssl(card)
    async with fed.session.get(politie.peer_url + "/api/v1/node", ssl=context) as resp:
        assert resp.status == 404
    async with fed.session.get(politie.peer_url + "/peer/v1/card", ssl=context) as resp:
        assert resp.status == 200


async def test_card_added_while_serving_is_trusted_without_restart(tmp_path: Path) -> None:
    fed = Federation(tmp_path, tls=True)
    try:
        for node_id, org_type, _, _ in DEFAULT_PARTIES:
            fed.add_node(node_id, org_type)
        fed.exchange_cards()
        fed.sign_and_install(convenant_toml(DEFAULT_PARTIES))
        await fed.start()
        late = fed.add_node("gemeente-test", "gemeente")
        await fed.start("gemeente-test")
        admin.add_peer(fed.nodes["politie-test"].ctx, late.card_json())
        admin.add_peer(late.ctx, fed.nodes["politie-test"].card_json())
        # The late node's certificate reaches politie's listener within the refresh.
        politie = fed.nodes["politie-test"]
        for _ in range(50):
            if late.ctx.tls_files.certificate_der in politie.ctx._tls_trusted:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        doc = evaluate_request(fed, "gemeente-test", "politie-test")
        card, _ = verify_card(politie.card_json())
        context = await late.ctx.peer_ssl(card)
        assert fed.session is not None
        async with fed.session.post(
            politie.peer_url + EVALUATE_PATH, data=jws_bytes(doc), ssl=context
        ) as resp:
            body = await resp.read()
        # Past TLS: refused as no party of the convenant, not for its connection.
        assert open_signed(fed, "politie-test", body, "vhnode-evaluate-response/v1")["reason"] == (
            "not_a_party"
        )
    finally:
        await fed.close()


# --- the pin, both directions -------------------------------------------------------------


async def test_client_certificate_of_another_key_is_refused_tls_mismatch(
    tls_federation: Federation,
) -> None:
    """The requester presents a certificate the partner trusts (another member's) but not
    the one its own card names: the partner refuses after identifying the signer."""
    fed = tls_federation
    vh, ggz = fed.nodes["vh-test"], fed.nodes["ggz-test"]
    vh.ctx.tls_files = ggz.ctx.tls_files
    vh.ctx._tls_clients.clear()
    fed.register("politie-test", REG)
    result = await fed.query("vh-test", [JAN_BSN], partners=["politie-test"])
    politie = partner_result(result, "politie-test")
    assert (politie["status"], politie["reason"]) == ("refused", "tls_mismatch"), politie
    assert "client certificate" in politie["detail"]


async def test_server_certificate_of_another_key_is_invalid(tls_federation: Federation) -> None:
    """The partner answers with a certificate whose key is not on its card: nothing is
    sent, and the requester says why."""
    fed = tls_federation
    cert, key = tls.self_signed("politie-test", ["127.0.0.1"], NOW)
    await _serve_certificate(fed, fed.nodes["politie-test"], cert, key)
    fed.register("politie-test", REG)
    result = await fed.query("vh-test", [JAN_BSN], partners=["politie-test"])
    politie = partner_result(result, "politie-test")
    assert (politie["status"], politie["reason"]) == ("invalid", "tls_certificate"), politie
    assert politie["tries"] == 1  # a TLS failure is not retried: it repeats itself


async def test_certificate_reissued_for_the_same_key_keeps_the_pin(
    tls_federation: Federation,
) -> None:
    """The pin is over the key, not the certificate: a partner serving a new certificate
    for its key is still asked by a requester holding its old card."""
    fed = tls_federation
    politie = fed.nodes["politie-test"]
    _, key_file = _files(politie)
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    renewed = tls.certificate_for(key, "politie-test", ["127.0.0.1"], NOW, 90)
    held = verify_card(politie.card_json())[0].tls_certificate_der
    await _serve_certificate(fed, politie, renewed, key_file.read_bytes())
    assert politie.ctx.tls_files is not None
    assert politie.ctx.tls_files.certificate_der != held
    fed.register("politie-test", REG)
    result = await fed.query("vh-test", [JAN_BSN], partners=["politie-test"])
    assert statuses(result)["politie-test"] == "hit"


async def test_expired_certificate_is_refused(tls_federation: Federation) -> None:
    """A card whose certificate has run out (its node renewed the card, not the
    certificate): refused as a server certificate by the requester, and as a client
    certificate by the partner."""
    fed = tls_federation
    politie, vh, om = fed.nodes["politie-test"], fed.nodes["vh-test"], fed.nodes["om-test"]
    past = NOW - dt.timedelta(days=30)
    _cert_file, key_file = _files(politie)
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    expired = tls.certificate_for(key, "politie-test", ["127.0.0.1"], past, 1)
    await _serve_certificate(fed, politie, expired, key_file.read_bytes())
    admin.renew_card(politie.ctx)
    admin.add_peer(vh.ctx, politie.card_json())
    result = await fed.query("vh-test", [JAN_BSN], partners=["politie-test"])
    failed = partner_result(result, "politie-test")
    assert (failed["status"], failed["reason"]) == ("invalid", "tls_certificate"), failed
    assert "expired" in failed["detail"]

    # Client side: vh presents an expired certificate that its card (held by om) carries.
    vh_cert, vh_key = _files(vh)
    own = serialization.load_pem_private_key(vh_key.read_bytes(), None)
    assert isinstance(own, ec.EllipticCurvePrivateKey)
    vh_cert.write_bytes(tls.certificate_for(own, "vh-test", ["127.0.0.1"], past, 1))
    vh.ctx.tls_files = tls.load_files(vh.home, vh.ctx.cfg.tls)  # type: ignore[arg-type]
    vh.ctx._tls_clients.clear()
    admin.renew_card(vh.ctx)
    admin.add_peer(om.ctx, vh.card_json())
    assert om.ctx.trust_peer_certificates(om.ctx.trust()) == 1
    result = await fed.query("vh-test", [JAN_BSN], partners=["om-test"])
    refused = partner_result(result, "om-test")
    # The partner ends the handshake with an alert: no answer, so unreachable.
    assert refused["status"] == "unreachable", refused


# --- CA mode ----------------------------------------------------------------------------


class _Ca:
    """A PKIoverheid-style issuing CA, made for the test."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, node_id: str, key: ec.EllipticCurvePrivateKey | None = None
    ) -> tuple[bytes, bytes]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_id)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


async def _ca_federation(root: Path, ca: _Ca) -> Federation:
    ca_file = root / "ca.pem"
    root.mkdir(parents=True, exist_ok=True)
    ca_file.write_bytes(ca.pem())

    def issue(home: Path, node_id: str) -> None:
        cert, key = ca.issue(node_id)
        (home / "tls").mkdir(parents=True)
        (home / "tls" / "cert.pem").write_bytes(cert)
        (home / "tls" / "key.pem").write_bytes(key)
        (home / "tls" / "key.pem").chmod(0o600)

    fed = Federation(root, tls=True, tls_settings={"ca_file": str(ca_file)}, tls_issue=issue)
    for node_id, org_type, _, _ in DEFAULT_PARTIES:
        fed.add_node(node_id, org_type)
    fed.exchange_cards()
    fed.sign_and_install(convenant_toml(DEFAULT_PARTIES))
    await fed.start()
    return fed


async def test_ca_mode_round_and_untrusted_or_mismatched_certificates(tmp_path: Path) -> None:
    ca = _Ca("Staat der Nederlanden Private Services CA - test")
    fed = await _ca_federation(tmp_path, ca)
    try:
        fed.register("politie-test", REG)
        result = await fed.query("vh-test", [JAN_BSN])
        assert statuses(result)["politie-test"] == "hit"

        # A certificate of the right CA whose key is not on the card: the chain is fine,
        # the pin is not — refused by the requester's pin check before anything is sent.
        politie = fed.nodes["politie-test"]
        other_cert, other_key = ca.issue("politie-test")
        await _serve_certificate(fed, politie, other_cert, other_key)
        result = await fed.query("vh-test", [JAN_BSN], partners=["politie-test"])
        failed = partner_result(result, "politie-test")
        assert failed["status"] == "invalid"
        assert failed["reason"] == "tls_certificate"
        assert "its card names" in failed["detail"], failed

        # And a requester presenting such a certificate is refused by the partner.
        vh = fed.nodes["vh-test"]
        cert_file, key_file = _files(vh)
        cert, key = ca.issue("vh-test")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        vh.ctx.tls_files = tls.load_files(vh.home, vh.ctx.cfg.tls)  # type: ignore[arg-type]
        vh.ctx._tls_clients.clear()
        result = await fed.query("vh-test", [JAN_BSN], partners=["om-test"])
        om = partner_result(result, "om-test")
        assert (om["status"], om["reason"]) == ("refused", "tls_mismatch"), om

        # A certificate from another CA, even with the pinned key: not trusted.
        own_key = serialization.load_pem_private_key(other_key, None)
        assert isinstance(own_key, ec.EllipticCurvePrivateKey)
        rogue = _Ca("Some other CA")
        rogue_cert, _ = rogue.issue("ggz-test")
        ggz = fed.nodes["ggz-test"]
        _g_cert, g_key = _files(ggz)
        g_own = serialization.load_pem_private_key(g_key.read_bytes(), None)
        assert isinstance(g_own, ec.EllipticCurvePrivateKey)
        rogue_cert, _ = rogue.issue("ggz-test", g_own)
        await _serve_certificate(fed, ggz, rogue_cert, g_key.read_bytes())
        result = await fed.query("vh-test", [JAN_BSN], partners=["ggz-test"])
        untrusted = partner_result(result, "ggz-test")
        assert untrusted["status"] == "invalid"
        assert untrusted["reason"] == "tls_certificate"
        assert "issuer" in untrusted["detail"], untrusted
    finally:
        await fed.close()


# --- plain HTTP -------------------------------------------------------------------------


async def _mixed(root: Path, allow_plain_http: bool) -> Federation:
    """vh-test and om-test over TLS, politie-test a plain node with a v1 card."""
    fed = Federation(root, tls=True, tls_settings={"allow_plain_http": allow_plain_http})
    for node_id, org_type, _, _ in DEFAULT_PARTIES:
        fed.add_node(node_id, org_type, tls=node_id != "politie-test")
    fed.exchange_cards()
    fed.sign_and_install(convenant_toml(DEFAULT_PARTIES))
    await fed.start()
    return fed


async def test_plain_http_peer_refused_unless_allowed(tmp_path: Path) -> None:
    fed = await _mixed(tmp_path / "strict", allow_plain_http=False)
    try:
        assert verify_card(fed.nodes["politie-test"].card_json())[1].typ == "vhnode-peer-card/v1"
        fed.register("politie-test", REG)
        result = await fed.query("vh-test", [JAN_BSN])
        plain = partner_result(result, "politie-test")
        assert (plain["status"], plain["reason"]) == ("invalid", "plain_http"), plain
        assert statuses(result)["om-test"] == "no_hit"  # the TLS partners still answer

        # A request signed by a TLS peer that arrives without a client certificate
        # (here on om's plain local listener) is refused too.
        doc = evaluate_request(fed, "vh-test", "om-test")
        assert fed.session is not None
        async with fed.session.post(
            fed.nodes["om-test"].url + EVALUATE_PATH, data=jws_bytes(doc)
        ) as resp:
            assert resp.status == 403
            answer = open_signed(fed, "om-test", await resp.read(), "vhnode-evaluate-response/v1")
        assert answer["reason"] == "tls_mismatch"
        assert "without a client certificate" in answer["reason_detail"]
    finally:
        await fed.close()

    fed = await _mixed(tmp_path / "lenient", allow_plain_http=True)
    try:
        fed.register("politie-test", REG)
        result = await fed.query("vh-test", [JAN_BSN])
        assert statuses(result)["politie-test"] == "hit"
    finally:
        await fed.close()


# --- what a passive observer sees ---------------------------------------------------------


class Relay:
    """A TCP relay on 127.0.0.1 that records every byte it carries, both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.captured = bytearray()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    self.captured += chunk
                    dst.write(chunk)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


SECRET_CASE = "CASUS-2026-GEHEIM-4711"


def _readable(captured: bytes) -> str:
    """The bytes as text plus every base64url run decoded: a JWS payload is base64url, and
    an observer decodes it as easily as reading it."""
    text = captured.decode("latin-1")
    decoded = []
    for run in re.findall(r"[A-Za-z0-9_-]{16,}", text):
        try:
            decoded.append(base64.urlsafe_b64decode(run + "=" * (-len(run) % 4)).decode("latin-1"))
        except ValueError:
            continue
    return text + "\n".join(decoded)


async def _captured_round(fed: Federation) -> str:
    vh, politie = fed.nodes["vh-test"], fed.nodes["politie-test"]
    target = politie.tls_port or politie.port
    relay = Relay(target)
    port = await relay.start()
    try:
        scheme = "https" if politie.tls_port else "http"
        admin.renew_card(politie.ctx, endpoint=f"{scheme}://127.0.0.1:{port}")
        admin.add_peer(vh.ctx, politie.card_json())
        fed.register("politie-test", REG)
        result = await fed.query(
            "vh-test", [JAN_BSN], partners=["politie-test"], case_ref=SECRET_CASE
        )
        assert statuses(result)["politie-test"] == "hit"
    finally:
        await relay.close()
    assert relay.captured, "the round went through the relay"
    return _readable(bytes(relay.captured))


@pytest.mark.parametrize("over_tls", [True, False])
async def test_passive_capture_shows_no_metadata(tmp_path: Path, over_tls: bool) -> None:
    """A round through a recording relay: over TLS neither the case reference, the
    purpose nor the user name is readable; over plain HTTP (the control, so this test can
    fail) all three are."""
    fed = await standard_federation(tmp_path, tls=over_tls)
    try:
        seen = await _captured_round(fed)
    finally:
        await fed.close()
    user = "coordinator-vh-test"
    purpose = PURPOSE
    secrets_in_clear = {w: w in seen for w in (SECRET_CASE, purpose, user)}
    if over_tls:
        assert secrets_in_clear == {SECRET_CASE: False, purpose: False, user: False}
    else:
        assert secrets_in_clear == {SECRET_CASE: True, purpose: True, user: True}


# --- the real command ------------------------------------------------------------------


def _vhnode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args], capture_output=True, text=True, check=False
    )


async def test_init_and_serve_over_tls_as_processes(tmp_path: Path) -> None:
    """`vhnode init` with an https endpoint makes a self-signed certificate (key 0600)
    and a v2 card; `vhnode serve` then listens with TLS for peers, /peer/ only, and plain
    on loopback for the local API."""
    home = tmp_path / "home"
    local, peers = free_port(), free_port()
    made = _vhnode(
        "init", "--home", str(home), "--node-id", "ggz-zwb", "--organisation", "GGZ",
        "--org-type", "ggz", "--endpoint", f"https://127.0.0.1:{peers}", "--port", str(local),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    card, doc = verify_card(json.loads((home / "card.json").read_text()))
    assert doc.typ == "vhnode-peer-card/v2"
    assert f"TLS key fingerprint:     {card.tls_key_fingerprint}" in made.stdout
    assert (home / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    server = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        context = tls.client_context(None, card)  # pinned to the card, no client certificate
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{local}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            url = f"https://127.0.0.1:{peers}"
            async with session.get(url + "/peer/v1/card", ssl=context) as resp:
                assert resp.status == 200
                assert verify_card(await resp.json(content_type=None))[0] == card
            async with session.get(url + "/api/v1/node", ssl=context) as resp:
                assert resp.status == 404
            # Plain HTTP on the peer port gets nowhere.
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{peers}/peer/v1/card") as resp:
                    await resp.read()
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


def test_init_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    cert, key = tls.self_signed("om-zwb", ["127.0.0.1"], NOW)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "key.pem").chmod(0o644)
    made = _vhnode(
        "init", "--home", str(tmp_path / "home"), "--node-id", "om-zwb", "--organisation", "OM",
        "--org-type", "om", "--endpoint", "https://om.example.nl:8443",
        "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
    )  # fmt: skip
    assert made.returncode == 1
    assert made.stderr.strip() == (
        f"error: tls.key_file {tmp_path / 'key.pem'} is open to other users (mode 644); "
        f"run: chmod 600 {tmp_path / 'key.pem'}"
    )
    assert not (tmp_path / "home").exists()  # refused before anything was written


def test_tls_new_moves_a_plain_node_to_tls(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = _vhnode(
        "init", "--home", str(home), "--node-id", "om-zwb", "--organisation", "OM",
        "--org-type", "om", "--endpoint", "http://127.0.0.1:8401",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert verify_card(json.loads((home / "card.json").read_text()))[1].typ.endswith("/v1")
    moved = _vhnode("tls", "new", "--home", str(home), "--endpoint", "https://127.0.0.1:8443")
    assert moved.returncode == 0, moved.stderr
    card, doc = verify_card(json.loads((home / "card.json").read_text()))
    assert (doc.typ, card.endpoint_url) == ("vhnode-peer-card/v2", "https://127.0.0.1:8443")
    shown = _vhnode("tls", "show", "--home", str(home))
    assert f"TLS key fingerprint:     {card.tls_key_fingerprint}" in shown.stdout
    again = _vhnode("tls", "new", "--home", str(home), "--endpoint", "https://127.0.0.1:8443")
    assert again.stderr.strip() == (
        "error: node.toml has a [tls] section already: see 'vhnode tls renew'"
    )
    renewed = _vhnode("tls", "renew", "--home", str(home), "--days", "30")
    assert renewed.returncode == 0, renewed.stderr
    card2, _ = verify_card(json.loads((home / "card.json").read_text()))
    assert card2.tls_key_fingerprint == card.tls_key_fingerprint  # same key, the pin stays
    assert card2.tls_certificate != card.tls_certificate  # a new certificate on a new card

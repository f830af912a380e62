"""Node configuration: ``<home>/node.toml``, validated with pydantic (README "Configuration")."""

from __future__ import annotations

import os
import re
import stat
import textwrap
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from node.errors import ConfigError
from node.protocol.fields import MAX_TAG_SET_TAGS
from node.protocol.models import NODE_ID_PATTERN, OrgType

CONFIG_FILE = "node.toml"
DB_FILE = "node.db"
CARD_FILE = "card.json"
KEYS_DIR = "keys"
DB_SIDE_FILES = ("-wal", "-shm")
"""SQLite's companions of ``node.db``; they hold the same data."""

# The home holds registry identifiers in clear, detail texts, case references and keys:
# the node's user alone may read any of it, whatever the umask.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (SQLite then gives its
    WAL and shared-memory files the same mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (also when it existed with another)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), PRIVATE_FILE_MODE)
        f.write(text)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as 0700; an existing ``path`` is set to 0700 too."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)


def check_private(path: Path, what: str) -> None:
    """ConfigError naming ``path`` and the chmod to run if group or others have any
    access to it; nothing if it does not exist."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        wanted = PRIVATE_DIR_MODE if stat.S_ISDIR(mode) else PRIVATE_FILE_MODE
        raise ConfigError(
            f"{what} {path} is open to other users (mode {mode & 0o777:o}); "
            f"run: chmod {wanted:o} {path}"
        )


def check_home_private(home: Path, cfg: NodeConfig) -> None:
    """Refuse to run on a home that others can read: the home folder, the database and
    its companions, the key folder, and the source system's token file. (Files inside
    a 0700 home are out of others' reach whatever their mode; the database is checked
    on its own because it is what a copy or a backup tool carries elsewhere.)"""
    check_private(home, "node home")
    check_private(home / KEYS_DIR, "key folder")
    for suffix in ("", *DB_SIDE_FILES):
        check_private(home / (DB_FILE + suffix), "database file")
    if cfg.details.source_token_file is not None:
        check_private(cfg.details.source_token_file.expanduser(), "details.source_token_file")
    if cfg.tls is not None:
        check_private(cfg.tls.path(home, cfg.tls.key_file), "tls.key_file")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # Slow and idle clients (docs/api.md "Connections"): a request head must be complete
    # this long after the connection opened or its previous answer was sent, else the
    # connection is closed (slowloris, idle keep-alive); a body must arrive within
    # body_timeout_seconds (else 408); at most max_connections are open at once.
    header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    max_connections: int = Field(256, ge=1)


class LimitsConfig(_Strict):
    # Token bucket per requester and convenant, counted in evaluated elements (subjects).
    evaluations_per_minute: float = Field(600.0, gt=0)
    evaluation_burst: int = Field(200, ge=1)
    max_subjects_per_request: int = Field(64, ge=1)
    # Detail requests, polls and hit notices per requester and convenant (§14): a token
    # bucket of its own, so a busy round never starves the detail stage nor the reverse.
    detail_messages_per_minute: float = Field(120.0, gt=0)
    detail_burst: int = Field(60, ge=1)
    clock_skew_seconds: int = Field(120, ge=1)
    # Requests refused at §6.6 steps 3–6 are logged as one count per window and claimed
    # requester, never one entry each (docs/protocol.md §6.6).
    unauthenticated_window_seconds: float = Field(60.0, ge=1)
    # Bad peer requests (unauthenticated, or answered with a 4xx problem) per source
    # address: a token bucket; once empty, /peer/ answers that address 429 until it refills.
    bad_peer_requests_per_minute: float = Field(60.0, gt=0)
    bad_peer_request_burst: int = Field(120, ge=1)
    # Source addresses whose buckets are held at once; the least recently seen goes first.
    peer_addresses_tracked: int = Field(4096, ge=16)


class PeersConfig(_Strict):
    timeout_seconds: float = Field(3.0, gt=0)
    tag_set_timeout_seconds: float = Field(60.0, gt=0)
    # One deadline per round bounds everything the round waits for (docs/api.md); a tag-set
    # transfer still running then goes on in the background for the next round.
    round_deadline_seconds: float = Field(10.0, gt=0, le=300)
    # The most tags a partner's tag-set answer may carry in added or removed (each): bounds
    # the answer's bytes before it is read (docs/protocol.md §6.5, §8.1).
    max_tag_set_tags: int = Field(1_000_000, ge=1, le=MAX_TAG_SET_TAGS)
    # A partner that fails fast (refused, reset, 502/503) is asked again, within the round's
    # deadline (docs/protocol.md §6.8 "Retries"): at most this many requests in all.
    max_tries: int = Field(3, ge=1, le=10)
    retry_backoff_seconds: float = Field(0.2, gt=0, le=10)


class RetentionConfig(_Strict):
    # How often the running node purges registrations past their retain_until day.
    purge_interval_seconds: float = Field(3600.0, gt=0)


class DetailsConfig(_Strict):
    """The detail exchange (docs/protocol.md §14)."""

    # How long a round's hits may be followed by a detail request (both sides, §14.1).
    hit_validity_hours: float = Field(168.0, gt=0)
    # The source system's endpoint for detail at request time (§14.10); none: stored only.
    source_url: AnyHttpUrl | None = None
    # File holding the bearer token for source_url (not the token itself: config is not secret).
    source_token_file: Path | None = None
    source_timeout_seconds: float = Field(5.0, gt=0)
    source_max_bytes: int = Field(262_144, ge=1024)
    # How long a partner keeps the detail requests it answered and the hit notices it got
    # (refs and case references; the log keeps its pseudonymous entries). A request with a
    # delivered category still to be retained by the requester is kept until then.
    record_days: int = Field(400, ge=1, le=3650)


class OprfConfig(_Strict):
    """OPRF key epochs (docs/protocol.md §6.1.1): how often this node, as a provider, changes
    the OPRF key of each convenant, and how long it honours the previous one."""

    # Days between key changes; 0: never change (the key of epoch 0 stays).
    epoch_days: int = Field(30, ge=0, le=3650)
    # After a change, hit proofs made under the previous key are accepted this long (§14.1).
    overlap_hours: int = Field(168, ge=0, le=24 * 365)


class DatabaseConfig(_Strict):
    # The most the node database may grow to, in MiB; unset: as far as the disk allows.
    # Past it a write fails as on a full disk (disk_full), so a runaway import stops
    # before it fills a disk other services share.
    max_size_mib: int | None = Field(None, ge=1)


class WebConfig(_Strict):
    """The web application under /app/ (docs/webapp.md)."""

    # A session unused this long ends (WCAG 2.2.1 lets security set it; 15 min is BIO's).
    session_idle_minutes: float = Field(15.0, gt=0, le=24 * 60)
    # A session ends this long after sign-in, however busy: a stolen cookie dies with it.
    session_absolute_hours: float = Field(10.0, gt=0, le=7 * 24)
    # Consecutive failed sign-ins of one user that lock it out, and for how long.
    max_failed_sign_ins: int = Field(5, ge=1, le=100)
    lockout_minutes: float = Field(15.0, gt=0, le=7 * 24 * 60)
    # The session cookie's Secure attribute; unset: Secure when the endpoint is https and
    # the node has no [tls] (the node behind its TLS-terminating proxy), so a test node on
    # http, and the loopback listener of a TLS node, still work.
    secure_cookie: bool | None = None


class LoggingConfig(_Strict):
    """How ``vhnode serve`` writes its log (node/logging_setup.py)."""

    # auto: journal lines under systemd ($JOURNAL_STREAM), console lines on a terminal,
    # JSON lines otherwise.
    format: Literal["auto", "json", "console", "journal"] = "auto"


class TlsConfig(_Strict):
    """TLS and mutual TLS between peers (docs/protocol.md §12.3, docs/operations.md "TLS")."""

    # The node's certificate (PEM; a chain: leaf first) and its private key (PEM, mode
    # 0600). Relative paths are under the node's home.
    cert_file: Path
    key_file: Path
    # A CA bundle (PEM, e.g. the PKIoverheid chain): a peer's certificate must chain to it
    # as well as match the key on the peer's card. Unset: the card's key alone decides.
    ca_file: Path | None = None
    # The peer listener: TLS, client certificates, /peer/ only. [http] stays the local
    # listener (API, web app) on loopback.
    host: str = "127.0.0.1"
    port: int = Field(8443, ge=0, le=65535)
    # Peers whose card names no TLS key (a v1 card), and requests that came without a
    # client certificate, are refused unless this is set.
    allow_plain_http: bool = False

    def path(self, home: Path, file: Path) -> Path:
        file = file.expanduser()
        return file if file.is_absolute() else home / file


class NodeConfig(_Strict):
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    organisation: str = Field(min_length=1, max_length=200)
    org_type: OrgType
    endpoint: AnyHttpUrl
    card_validity_days: int = Field(730, ge=1, le=3650)
    http: HttpConfig = HttpConfig()
    limits: LimitsConfig = LimitsConfig()
    peers: PeersConfig = PeersConfig()
    retention: RetentionConfig = RetentionConfig()
    details: DetailsConfig = DetailsConfig()
    oprf: OprfConfig = OprfConfig()
    database: DatabaseConfig = DatabaseConfig()
    web: WebConfig = WebConfig()
    logging: LoggingConfig = LoggingConfig()
    # Unset: a node without TLS, which speaks plain HTTP to every peer (a test node, or a
    # home from before TLS until its admin adds the section).
    tls: TlsConfig | None = None


# What node.toml says about itself, and the comment above each of its keys: `vhnode init`
# writes them, and config/node.example.toml is render_config's text of its example values
# (tests/test_config_file.py keeps the two equal).
CONFIG_HEADER = (
    "vhnode node configuration: <home>/node.toml (validated by node/config.py). `vhnode "
    "init` writes this file; edit it afterwards only where a comment says so. Unknown "
    "keys are refused, so a typo is an error rather than a silently ignored setting."
)
CONFIG_COMMENTS: dict[str, str] = {
    "node_id": (
        "This node's id in the federation: lowercase letters, digits and '-', 2 to 63 "
        "characters, starting with a letter or digit. It is on the peer card and in every"
        " convenant that names this node, so it cannot change once partners know it."
    ),
    "organisation": (
        "The partner organisation that runs this node (1 to 200 characters), as shown to peers."
    ),
    "org_type": (
        "Kind of partner: politie, om, reclassering, rvdk, jeugdzorg, ggz, gemeente, "
        "woningcorporatie, dji or veiligheidshuis."
    ),
    "endpoint": (
        "The URL at which peers reach this node's /peer/v1/ endpoints: https, the [tls] "
        "peer listener (or a proxy in front of it). It is on the peer card: after a change, "
        "re-issue the card and send it to the partners again."
    ),
    "card_validity_days": "How long a newly issued peer card is valid, in days (1 to 3650).",
    "http.host": (
        "The local listener: the local API and the web app, plain HTTP. The node serves "
        "loopback only unless this names another address; keep 127.0.0.1 (peers use the "
        "[tls] listener; users on other machines a TLS-terminating proxy)."
    ),
    "http.port": "TCP port (0 to 65535; 0 picks a free port).",
    "http.max_body_bytes": (
        "Largest request body accepted, in bytes (at least 1024); larger bodies get HTTP 413."
    ),
    "http.header_timeout_seconds": (
        "Slow and idle clients: a connection must send a complete request head within this "
        "many seconds of opening, or of its previous answer; else the server closes it "
        "(a slowloris client, an idle keep-alive connection)."
    ),
    "http.body_timeout_seconds": (
        "The whole request body must arrive within this many seconds; else HTTP 408 "
        "(request_timeout) and the connection is closed."
    ),
    "http.max_connections": (
        "Connections open at once. At the cap a new connection takes the place of the "
        "oldest one without a request in progress; when all are busy it gets HTTP 503 "
        "(too_many_connections). Keep it above the partners' and local clients' pools."
    ),
    "limits.evaluations_per_minute": (
        "Token bucket per requester and convenant, counted in evaluated subjects: the "
        "sustained rate (per minute, > 0) and the burst (>= 1). This is what keeps a "
        "partner from enumerating our registry by asking about every BSN."
    ),
    "limits.max_subjects_per_request": (
        "Most subjects (persons, addresses) in one bekendheid request (>= 1)."
    ),
    "limits.detail_messages_per_minute": (
        "Detail requests, polls and hit notices per requester and convenant: a bucket of "
        "its own, counted in messages (docs/protocol.md §7.3)."
    ),
    "limits.clock_skew_seconds": (
        "How far a signed request's timestamp may be from our clock, in seconds (>= 1)."
    ),
    "limits.unauthenticated_window_seconds": (
        "Requests that fail authentication, addressing or freshness (docs/protocol.md "
        "§6.6.1) are not logged one by one: one log entry per window (seconds, >= 1) and "
        "claimed requester counts them."
    ),
    "limits.bad_peer_requests_per_minute": (
        "Bad peer requests per source address: a token bucket (per minute, burst). Once "
        "empty, /peer/ answers that address 429 until it refills; good requests take no "
        "token."
    ),
    "limits.peer_addresses_tracked": (
        "Source addresses whose buckets are held at once (>= 16); the least recently seen goes."
    ),
    "peers.timeout_seconds": (
        "Per-partner timeout for an evaluate call when we ask bekendheid, in seconds (> "
        "0). A partner that does not answer in time is reported as `timeout`, never as "
        "`no_hit`."
    ),
    "peers.tag_set_timeout_seconds": (
        "Timeout for fetching a partner's tag set (full or delta), in seconds (> 0)."
    ),
    "peers.round_deadline_seconds": (
        "One deadline per round, in seconds (> 0, at most 300): a partner still "
        "outstanding then is `timeout`, whatever it was doing (a tag-set transfer goes on"
        " in the background). The local API's answer to a round never takes longer "
        "(docs/api.md)."
    ),
    "peers.max_tag_set_tags": (
        "The most tags a partner's tag-set answer may carry (in added, and in removed): "
        "its size is bounded by this before it is read (docs/protocol.md §8.1)."
    ),
    "peers.max_tries": (
        "Requests sent to a partner that fails fast (connection refused or reset before "
        "an answer, HTTP 502/503), the first included (1 to 10; 1: never retry). Each "
        "retry is signed afresh and made only if it fits the round's deadline; a timeout "
        "or a signed answer, refusals included, is never retried. The partner is "
        "`unreachable` only after the last try; its result says how many were made."
    ),
    "peers.retry_backoff_seconds": (
        "The pause before the first retry, in seconds (> 0, at most 10); it doubles "
        "before each next one and is jittered to between half and all of that."
    ),
    "retention.purge_interval_seconds": (
        "How often the running node purges what is past its retention, in seconds (> 0): "
        "the registrations past their retain_until day, and received detail past its "
        "retain_until (docs/protocol.md §14.8). `vhnode registry purge` and `vhnode "
        "details purge` do it now."
    ),
    "details.hit_validity_hours": (
        "The detail exchange after a hit (docs/protocol.md §14). How long a bekendheid "
        "round's hits may be followed by a detail request or a hit notice, in hours (> "
        "0). The requester deletes a round's hit proofs after this; a partner refuses a "
        "detail request whose round is older (unknown_round)."
    ),
    "details.source_url": (
        "Where detail comes from: the text the source system stored with each "
        "registration (`details` in the registration, docs/api.md) and, only for "
        "categories without a stored text, the source system's endpoint, asked at request"
        " time (docs/source-system.md). Unset (the default): stored texts only. The node "
        "POSTs the registration refs and categories it needs to this URL; keep it on the "
        "partner's own network."
    ),
    "details.source_token_file": (
        "A file holding the bearer token the node sends to source_url (read at every "
        "call, so a new token needs no restart). Mode 0600: the node refuses to start, "
        "and a running node to use it, while others can read it. The token is not in "
        "this file, which is not secret. Unset: no Authorization header."
    ),
    "details.source_timeout_seconds": (
        "The whole call (connect, send, read) must end within this many seconds (> 0), "
        "and the answer be at most this many bytes (>= 1024); otherwise the categories "
        "that needed it are `unavailable` (source_unavailable, source_too_large)."
    ),
    "details.record_days": (
        "As a partner: how long this node keeps the detail requests it answered and the "
        "hit notices it received (registration refs, case references), in days (1-3650). "
        "A request whose delivered detail the requester may still hold is kept until that"
        " detail's retain_until. The log keeps its pseudonymous entries either way."
    ),
    "oprf.epoch_days": (
        "As a provider: every this many days (0-3650; 0: never) the OPRF key of each "
        "convenant changes and the tag set is published again under the new key "
        "(docs/protocol.md §6.1.1), so a tag a requester learned tells nothing after the "
        "change. The change runs in the background and costs one OPRF evaluation per "
        "subject key in scope (docs/operations.md)."
    ),
    "oprf.overlap_hours": (
        "After a key change, how long hit proofs made under the previous key are still "
        "accepted in detail requests and hit notices, in hours (0-8760). Keep it at least "
        "details.hit_validity_hours."
    ),
    "database.max_size_mib": (
        "The most the node database (node.db) may grow to, in MiB (>= 1). Past it every write "
        "fails as on a full disk: `disk_full` (HTTP 507) at the API, 'error: disk full' in "
        "the CLI, and nothing of the failed change is written. Unset (the default): as far "
        "as the disk allows."
    ),
    "web.session_idle_minutes": (
        "The web application under /app/ (docs/webapp.md): coordinators, liaisons, privacy "
        "officers and admins sign in with a password and a TOTP code (`vhnode user add NAME "
        "--role ROLE --password`). A session unused this many minutes ends (> 0); the user "
        "signs in again."
    ),
    "web.session_absolute_hours": (
        "A session ends this many hours after sign-in, however busy (> 0)."
    ),
    "web.max_failed_sign_ins": (
        "After this many failed sign-ins in a row a user is locked out for lockout_minutes; "
        "`vhnode user set-password` lifts it. Both are in the node's log."
    ),
    "web.lockout_minutes": "How long a lock-out lasts, in minutes (> 0).",
    "logging.format": (
        "How `vhnode serve` writes its log to standard error: auto (the default) picks "
        "journal under systemd, console on a terminal and json otherwise; journal is one "
        "'<priority>event key=value' line per event without timestamp or colour, for "
        "journald; json is one JSON object per line with an ISO 8601 UTC timestamp; "
        "console is coloured lines for a person."
    ),
    "tls.cert_file": (
        'TLS between peers (docs/operations.md "TLS"). The node\'s certificate (PEM, leaf '
        "first) and private key (PEM, mode 0600); relative to the home. `vhnode init` makes "
        "a self-signed one. Its key is on the peer card (v2): a new key needs a new card."
    ),
    "tls.ca_file": (
        "A CA bundle (PEM, e.g. PKIoverheid): a peer's certificate must also chain to it. "
        "Unset: the key on the peer's card alone decides (the pin)."
    ),
    "tls.host": (
        "The peer listener: TLS with client certificates, /peer/ endpoints only. Listening "
        "beyond loopback is this line's decision; the card's endpoint is https at this port."
    ),
    "tls.port": "TCP port of the peer listener (0 to 65535).",
    "tls.allow_plain_http": (
        "Talk to peers whose card names no TLS key (a v1 card) over plain HTTP, and accept "
        "peer requests without a matching client certificate. Default false."
    ),
    "web.secure_cookie": (
        "The session cookie's Secure attribute. Unset (the default): Secure when `endpoint` "
        "is https and there is no [tls] (the web app behind that endpoint's proxy). With "
        "[tls] the web app is on the plain local listener: set true when users reach it "
        "through a TLS proxy."
    ),
}
# Options without a default: shown commented out, with an example value to copy.
CONFIG_EXAMPLES: dict[str, str] = {
    "web.secure_cookie": "true",
    "database.max_size_mib": "4096",
    "details.source_url": '"https://bps.politie-zwb.example.nl/vhnode/detail"',
    "details.source_token_file": '"/srv/vhnode/source.token"',
    "tls.ca_file": '"/etc/ssl/pkioverheid/private-services-g1.pem"',
}


def load_config(home: Path) -> NodeConfig:
    path = home / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"no {CONFIG_FILE} in {home}; run 'vhnode init' first") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from e
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from e


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, 88, initial_indent="# ", subsequent_indent="# ")


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _keyed(key: str, line: str) -> list[str]:
    return [*_comment(CONFIG_COMMENTS.get(key, "")), line]


def render_section(section: str, model: BaseModel) -> list[str]:
    """One ``[section]`` of node.toml, each key under its comment."""
    lines = [f"[{section}]"]
    for k, v in model.model_dump().items():
        key = f"{section}.{k}"
        if v is not None:
            lines += _keyed(key, f"{k} = {_value(v)}")
        elif key in CONFIG_EXAMPLES:  # TOML has no null: an unset option is a comment
            lines += _keyed(key, f"# {k} = {CONFIG_EXAMPLES[key]}")
    return lines


def render_config(cfg: NodeConfig) -> str:
    """TOML text for a config, each key under the comment that explains it (no TOML writer
    in the stdlib; the shape is flat enough)."""
    top = {
        "node_id": cfg.node_id,
        "organisation": cfg.organisation,
        "org_type": cfg.org_type,
        "endpoint": str(cfg.endpoint).rstrip("/"),
        "card_validity_days": cfg.card_validity_days,
    }
    lines = _comment(CONFIG_HEADER)
    for k, v in top.items():
        lines += ["", *_keyed(k, f"{k} = {_value(v)}")]
    sections = [
        "http",
        "limits",
        "peers",
        "retention",
        "details",
        "oprf",
        "database",
        "web",
        "logging",
    ]
    if cfg.tls is not None:
        sections.append("tls")
    for section in sections:
        lines += ["", *render_section(section, getattr(cfg, section))]
    return "\n".join(lines) + "\n"


def add_tls_section(home: Path, tls: TlsConfig) -> None:
    """Append ``[tls]`` to ``<home>/node.toml`` (``vhnode tls new``): the admin's other
    lines stay; the file is replaced atomically, with its mode, and must still load."""
    path = home / CONFIG_FILE
    text = path.read_text()
    if re.search(r"^\[tls\]", text, re.MULTILINE):
        raise ConfigError(f"{path} has a [tls] section already")
    new_text = text.rstrip("\n") + "\n\n" + "\n".join(render_section("tls", tls)) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path.stat().st_mode & 0o777)
    with os.fdopen(fd, "w") as f:
        f.write(new_text)
    os.replace(tmp, path)
    load_config(home)


_ENDPOINT_LINE = re.compile(r"^endpoint[ \t]*=.*$", re.MULTILINE)


def set_endpoint(home: Path, endpoint: str) -> None:
    """Change ``endpoint`` in ``<home>/node.toml`` in place (a card renewal with a new
    endpoint, docs/cli.md ``card renew``): only that line, so the admin's comments and
    layout stay; the file is replaced atomically, with its mode."""
    path = home / CONFIG_FILE
    text = path.read_text()
    top = text.split("\n[", 1)[0]  # the top-level keys come before the first [section]
    new_line = 'endpoint = "' + endpoint.replace("\\", "\\\\").replace('"', '\\"') + '"'
    new_top, n = _ENDPOINT_LINE.subn(lambda _: new_line, top, count=1)
    if n != 1:
        raise ConfigError(f"{path}: no top-level endpoint line to change")
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # Created with the old file's mode from the start: never readable by more than it was.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path.stat().st_mode & 0o777)
    with os.fdopen(fd, "w") as f:
        f.write(new_top + text[len(top) :])
    os.replace(tmp, path)
    load_config(home)  # the file still parses and validates

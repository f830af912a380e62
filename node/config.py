"""Node configuration: ``<home>/node.toml``, validated with pydantic (README "Configuration")."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from node.errors import ConfigError
from node.protocol.fields import MAX_TAG_SET_TAGS
from node.protocol.models import NODE_ID_PATTERN, OrgType

CONFIG_FILE = "node.toml"
DB_FILE = "node.db"
CARD_FILE = "card.json"
KEYS_DIR = "keys"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)


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


def render_config(cfg: NodeConfig) -> str:
    """TOML text for a config (no TOML writer in the stdlib; the shape is flat enough)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [
        f"node_id = {value(cfg.node_id)}",
        f"organisation = {value(cfg.organisation)}",
        f"org_type = {value(cfg.org_type)}",
        f"endpoint = {value(str(cfg.endpoint).rstrip('/'))}",
        f"card_validity_days = {cfg.card_validity_days}",
    ]
    for section in ("http", "limits", "peers", "retention", "details"):
        lines.append(f"\n[{section}]")
        for k, v in getattr(cfg, section).model_dump().items():
            if v is not None:  # TOML has no null: an unset option is left out
                lines.append(f"{k} = {value(v)}")
    return "\n".join(lines) + "\n"


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

"""Shared pydantic building blocks for the message models (docs/protocol.md §2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
)

from node.errors import MalformedMessage


def _utc(v: datetime) -> datetime:
    if v.tzinfo is None:
        raise ValueError("timestamp needs a time zone (use Z)")
    return v.astimezone(UTC)


_RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _one_form(v: Any) -> Any:
    # On the wire exactly one form is accepted (§2): "YYYY-MM-DDTHH:MM:SSZ". Numbers,
    # fractions and other offsets would give one instant several signed encodings.
    if isinstance(v, datetime):
        return v
    if not isinstance(v, str) or not _RFC3339_Z.fullmatch(v):
        raise ValueError("timestamp must be RFC 3339 UTC, whole seconds: YYYY-MM-DDTHH:MM:SSZ")
    return v


# The kinds of partner (docs/protocol.md §3) and the form of a node id, shared by every
# message that names a node.
OrgType = Literal[
    "politie",
    "om",
    "reclassering",
    "rvdk",
    "jeugdzorg",
    "ggz",
    "gemeente",
    "woningcorporatie",
    "dji",
    "veiligheidshuis",
]
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"

M = TypeVar("M", bound=BaseModel)

Timestamp = Annotated[datetime, BeforeValidator(_one_form), AfterValidator(_utc)]
# Integers on the wire are JSON integers, never "1", 1.0 or true.
WireInt = Annotated[int, Strict()]


def rfc3339(t: datetime) -> str:
    """The one timestamp form on the wire: UTC, whole seconds, 'Z'."""
    return t.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class WireModel(BaseModel):
    """Strict: unknown fields are errors, so every accepted message matches the spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        """The JSON object as signed: datetimes as RFC 3339, no None-valued optionals dropped."""
        out: dict[str, Any] = {}
        for key, val in self.model_dump(mode="python").items():
            out[key] = _wire_value(val)
        return out


def _wire_value(val: Any) -> Any:
    if isinstance(val, datetime):
        return rfc3339(val)
    if isinstance(val, dict):
        return {k: _wire_value(v) for k, v in val.items()}
    if isinstance(val, list | tuple):
        return [_wire_value(v) for v in val]
    return val


def parse_model(model: type[M], data: Any) -> M:
    """Validate wire data into ``model``; one readable MalformedMessage on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or model.__name__
        raise MalformedMessage(f"{model.__name__}: {where}: {first['msg']}") from e


T = TypeVar("T")


def parse_union(adapter: TypeAdapter[T], name: str, data: Any) -> T:
    """``parse_model`` for a message that is one of several models (an answer or a
    refusal, told apart by a discriminator): the matching model, or MalformedMessage."""
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or name
        raise MalformedMessage(f"{name}: {where}: {first['msg']}") from e

"""Signing in to the web application: password, second factor, lock-out, sessions.

A user of the node (node/store/users.py) signs in with its name, its password (argon2id)
and a TOTP code (RFC 6238, 30-second steps, one step of clock drift either way, each
code accepted once). Consecutive failures lock the user out for a while. Sessions are
rows in the node's SQLite (node/store/web_sessions.py): signing out, revoking the user
and either timeout end them for certain. Every sign-in, sign-out, failure and lock-out
is a log entry (docs/webapp.md "What the log holds").

Password hashing is slow on purpose, so it never runs on the event loop nor on the
writer thread: the hash is read, verified on a worker thread, and the outcome written.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import argon2
import pyotp

from node.errors import InputError, NotFound
from node.flows import log_entries
from node.flows.context import NodeContext
from node.protocol.models import rfc3339
from node.store import credentials, web_sessions
from node.store.db import tx
from node.store.web_sessions import WebSession

# argon2id with RFC 9106's second recommended parameters (argon2-cffi's defaults).
HASHER = argon2.PasswordHasher()
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256
TOTP_ISSUER = "vhnode"
TOTP_DRIFT_STEPS = 1
# A session's last use is written at most this often: a page view is not a write job.
TOUCH_EVERY = timedelta(seconds=60)
# Verified when the name is unknown, so an unknown name takes as long as a known one.
_DUMMY_HASH = HASHER.hash("vhnode: no such user")


class SignInFailed(Exception):
    """The sign-in did not succeed; ``reason`` is logged, the user sees one message for all."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedIn:
    user: str
    role: str
    session_id: str


@dataclass(frozen=True)
class Enrolment:
    """A new second factor, shown once: the secret and its otpauth:// URI (RFC 6238 apps)."""

    secret: str
    uri: str


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"password: at most {MAX_PASSWORD_CHARS} characters")


def set_credentials(
    ctx: NodeContext, name: str, password: str, *, new_second_factor: bool
) -> Enrolment | None:
    """Set ``name``'s password; enrol a new TOTP secret when asked or when it has none.
    For the CLI (``vhnode user add --password``, ``vhnode user set-password``): runs on
    the node's direct connection. Ends the user's web sessions: whoever knew the old
    password is signed out."""
    check_password(password)
    return store_credentials(ctx, name, HASHER.hash(password), new_second_factor=new_second_factor)


async def hash_password(password: str) -> str:
    """``password`` checked and hashed on a worker thread: never on the event loop, nor
    on the writer thread, which other requests wait for."""
    check_password(password)
    return await asyncio.to_thread(HASHER.hash, password)


def store_credentials(
    ctx: NodeContext,
    name: str,
    password_hash: str | None,
    *,
    new_second_factor: bool,
    by: str | None = None,
) -> Enrolment | None:
    """Set ``name``'s password (when ``password_hash`` is given; it also lifts a
    lock-out) and enrol a new TOTP secret when asked or when the user has none, in one
    transaction with its log entry. Ends the user's web sessions: whoever knew the old
    password or held the old second factor is signed out."""
    if password_hash is None and not new_second_factor:
        raise InputError("nothing to set: a password, a new second factor or both")
    key = ctx.keys.second_factor_key()
    now = ctx.clock.now()
    with tx(ctx.conn):
        found = credentials.find(ctx.conn, key, name)
        if found is None or found.revoked:
            raise NotFound(f"no active user {name}")
        if password_hash is not None:
            credentials.set_password(ctx.conn, name, password_hash, now)
        enrolment = None
        if new_second_factor or found.totp_secret is None:
            secret = pyotp.random_base32()
            credentials.set_totp(ctx.conn, key, name, secret, now)
            uri = pyotp.TOTP(secret).provisioning_uri(
                name=f"{name}@{ctx.node_id}", issuer_name=TOTP_ISSUER
            )
            enrolment = Enrolment(secret, uri)
        web_sessions.delete_of_user(ctx.conn, name)
        ctx.record(
            [
                log_entries.user_credentials_set(
                    name=name,
                    password=password_hash is not None,
                    second_factor=enrolment is not None,
                    by=by,
                )
            ]
        )
    return enrolment


def totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` is valid for at ``now`` (± one step of drift), or None."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    for offset in range(-TOTP_DRIFT_STEPS, TOTP_DRIFT_STEPS + 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(at), code):
            return int(totp.timecode(at))
    return None


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return bool(HASHER.verify(password_hash, password))
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


async def sign_in(ctx: NodeContext, name: str, password: str, code: str) -> SignedIn:
    """A new session for ``name``, or SignInFailed (logged, and counted towards lock-out
    when ``name`` is a user here)."""
    key = ctx.keys.second_factor_key()
    cfg = ctx.cfg.web
    name = name.strip()
    found = await ctx.read(lambda: credentials.find(ctx.conn, key, name)) if name else None
    stored = found.password_hash if found is not None else None
    password_ok = await asyncio.to_thread(_password_matches, stored or _DUMMY_HASH, password)
    now = ctx.clock.now()

    def decide() -> SignedIn | str:
        # Decided again inside the write: another sign-in may have used the code or
        # locked the user out since it was read.
        current = credentials.find(ctx.conn, key, name) if found is not None else None
        if current is None:
            ctx.record([log_entries.web_sign_in_failed(name=None, reason="unknown_user")])
            return "unknown_user"
        if current.revoked:
            reason = "revoked"
        elif current.locked_until is not None and now < current.locked_until:
            reason = "locked_out"
        elif current.password_hash is None or current.totp_secret is None:
            reason = "no_credentials"
        elif not password_ok:
            reason = "wrong_password"
        else:
            step = totp_step(current.totp_secret, code, now)
            if step is None:
                reason = "wrong_code"
            elif step <= current.totp_last_step:
                reason = "code_reused"
            else:
                credentials.record_success(ctx.conn, name, step, now)
                session_id = web_sessions.create(ctx.conn, name, now)
                ctx.record([log_entries.web_signed_in(name=name, role=current.role)])
                return SignedIn(name, current.role, session_id)
        entries = [log_entries.web_sign_in_failed(name=name, reason=reason)]
        if reason in ("wrong_password", "wrong_code", "code_reused"):
            until = now + timedelta(minutes=cfg.lockout_minutes)
            if credentials.record_failure(ctx.conn, name, cfg.max_failed_sign_ins, until, now):
                entries.append(log_entries.web_locked_out(name=name, until=rfc3339(until)))
        ctx.record(entries)
        return reason

    outcome = await ctx.write(decide)
    if isinstance(outcome, str):
        raise SignInFailed(outcome)
    return outcome


@dataclass(frozen=True)
class SessionState:
    """What a session cookie stands for now: a live session, or why it ended."""

    session: WebSession | None
    expired: bool = False


def _expiry(ctx: NodeContext, s: WebSession, now: datetime) -> str | None:
    cfg = ctx.cfg.web
    if now - s.created_at >= timedelta(hours=cfg.session_absolute_hours):
        return "absolute"
    if now - s.last_seen_at >= timedelta(minutes=cfg.session_idle_minutes):
        return "idle"
    return None


async def current_session(ctx: NodeContext, session_id: str) -> SessionState:
    """The live session behind ``session_id``; one past a timeout is ended (and logged)."""
    found = await ctx.read(lambda: web_sessions.find(ctx.conn, session_id))
    if found is None:
        return SessionState(None)
    now = ctx.clock.now()
    why = _expiry(ctx, found, now)
    if why is not None:

        def end() -> None:
            if web_sessions.delete(ctx.conn, session_id):
                ctx.record([log_entries.web_signed_out(name=found.user, why=why)])

        await ctx.write(end)
        return SessionState(None, expired=True)
    if now - found.last_seen_at >= TOUCH_EVERY:
        await ctx.write(lambda: web_sessions.touch(ctx.conn, session_id, now))
    return SessionState(found)


async def sign_out(ctx: NodeContext, session_id: str) -> None:
    def end() -> None:
        found = web_sessions.find(ctx.conn, session_id)
        if web_sessions.delete(ctx.conn, session_id) and found is not None:
            ctx.record([log_entries.web_signed_out(name=found.user, why="sign_out")])

    await ctx.write(end)


def expire_sessions(ctx: NodeContext) -> int:
    """Delete sessions past either timeout (the retention pass); each is logged as ended."""
    cfg = ctx.cfg.web
    now = ctx.clock.now()
    idle_before = now - timedelta(minutes=cfg.session_idle_minutes)
    created_before = now - timedelta(hours=cfg.session_absolute_hours)
    rows = web_sessions.expired(ctx.conn, idle_before, created_before)
    if not rows:
        return 0
    web_sessions.delete_expired(ctx.conn, idle_before, created_before)
    ctx.record(
        [
            log_entries.web_signed_out(name=user, why="absolute" if absolute else "idle")
            for user, absolute in rows
        ]
    )
    return len(rows)

"""The node's HTTP server: peer endpoints and the local API (docs/protocol.md §6, docs/api.md).

Cross-cutting concerns are middlewares: every error becomes RFC 9457 problem+json in one
place; ``/api/`` routes need a bearer token whose role the route allows. Database work
is quick and local, so handlers call the store directly; the event loop owns the one
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.errors import (
    AuthError,
    ClientAborted,
    Forbidden,
    InputError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    TooManyBadRequests,
    VhnodeError,
)
from node.flows import (
    admin,
    card_announce,
    key_epochs,
    key_pin_exchange,
    monitoring,
    readiness,
    signin,
    unauthenticated,
)
from node.flows import answering as provider
from node.flows import detail_answering as detail_provider
from node.flows import detail_asking as requester
from node.flows.asking import ask_bekendheid
from node.flows.audit import inzage, render, report, verification
from node.flows.context import ON_LOOP, NodeContext
from node.flows.cross_check import cross_check
from node.flows.publishing import apply_changes
from node.flows.restore_check import answer_held_head, check_restored
from node.http import details_routes as requester_routes
from node.http import liaison_routes as provider_routes
from node.http.peer_guard import PeerGuard
from node.http.plumbing import (
    CTX,
    JOSE,
    PROBLEM,
    REFUSED,
    SESSION,
    UNAUTHENTICATED,
    USER,
    Handler,
    jose,
    json_object,
    peer_transport,
    permits,
    roles,
)
from node.http.statuses import http_status
from node.http.webapp.app import PREFIX as WEBAPP_PREFIX
from node.http.webapp.app import make_webapp
from node.protocol.convenant import ID_PATTERN
from node.protocol.identifiers import SubjectIdentifier, amsterdam_date, parse_identifier
from node.protocol.masking import masked
from node.protocol.registration import parse_registration
from node.store import db, users
from node.store.users import User

logger = structlog.get_logger("vhnode.http")

GUARD = web.AppKey("peer_guard", PeerGuard)
# Below the default [http] header_timeout_seconds (10 s) of every partner node.
PEER_KEEPALIVE_SECONDS = 5.0


def problem(status: int, type_: str, title: str, detail: str, instance: str) -> web.Response:
    body = {"type": type_, "title": title, "status": status, "detail": detail, "instance": instance}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as problem+json with a stable ``type`` (docs/api.md "Errors")."""
    ON_LOOP.set(True)  # this request's task: no SQLite here, only through ctx.write/read
    try:
        return await handler(request)
    except VhnodeError as e:
        # The route template, not the path: a path may carry a source system's record ref.
        status = http_status(e)
        logger.info("request_failed", route=_route(request), code=e.code, status=status)
        resp = problem(status, e.problem_type, e.title, e.detail, request.path)
        if isinstance(e, RequestTimeout | ClientAborted):
            resp.force_close()  # the rest of the body is not waited for
        return resp
    except web.HTTPRequestEntityTooLarge:
        err = PayloadTooLarge("request body exceeds the node's max_body_bytes")
        return problem(413, err.problem_type, err.title, err.detail, request.path)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
        resp = problem(
            e.status,
            "https://vhnode.nl/problems/" + code,
            e.reason,
            e.text or e.reason,
            request.path,
        )
        if "Allow" in e.headers:  # RFC 9110 §15.5.6: a 405 names the allowed methods
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except Exception:  # the one place an unexpected error is caught: log it, leak nothing
        logger.exception("unhandled_error", route=_route(request))
        return problem(
            500,
            "https://vhnode.nl/problems/internal",
            "Internal error",
            "the node failed to handle the request; see its log",
            request.path,
        )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "?"


TLS_LISTENER_PATHS = ("/peer/",)
# How often the peer listener's trust store is brought up to the held cards (§12.3).
TLS_TRUST_REFRESH_SECONDS = 1.0


@web.middleware
async def tls_listener_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The TLS peer listener serves the peer endpoints only: the local API, the web app
    and the health endpoints stay on the loopback [http] listener (docs/adr/0005)."""
    transport = request.transport
    on_tls = transport is not None and transport.get_extra_info("sslcontext") is not None
    if on_tls and not request.path.startswith(TLS_LISTENER_PATHS):
        raise web.HTTPNotFound(text="the peer listener serves /peer/ only")
    return await handler(request)


@web.middleware
async def peer_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/peer/``: an address that sent too many bad requests gets 429 before its body is
    read; each bad request (unauthenticated, or a 4xx problem) takes a token (§12.1)."""
    if not request.path.startswith("/peer/"):
        return await handler(request)
    guard = request.app[GUARD]
    address = request.remote or "?"
    if guard.blocked(address, request.app[CTX].clock.monotonic()):
        request.app[CTX].metrics.bad_peer_requests_limited()
        raise TooManyBadRequests(
            f"more than {request.app[CTX].cfg.limits.bad_peer_request_burst} bad peer "
            "requests from this address; wait and retry"
        )
    try:
        resp = await handler(request)
    except VhnodeError as e:
        if 400 <= http_status(e) < 500:
            guard.bad(address, request.app[CTX].clock.monotonic())
        raise
    except web.HTTPException as e:
        if 400 <= e.status < 500:
            guard.bad(address, request.app[CTX].clock.monotonic())
        raise
    if resp.get(UNAUTHENTICATED):
        guard.bad(address, request.app[CTX].clock.monotonic())
    if (reason := resp.get(REFUSED)) is not None:
        request.app[CTX].metrics.refused(reason)
    return resp


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body before the handler, within ``[http] body_timeout_seconds``
    (else 408 and the connection closed); a client that goes away mid-upload is an
    info line (``client_aborted``), not an error. Runs after the peer guard and the
    bearer check, so a blocked address or a caller without a token is not read."""
    if request.body_exists:
        limit = request.app[CTX].cfg.http.body_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                # Kept by aiohttp: the handler's read() returns it. (can_read_body is
                # False from here on; handlers ask body_exists.)
                await request.read()
        except TimeoutError as e:
            raise RequestTimeout(f"the request body did not arrive within {limit:g} s") from e
        except ConnectionResetError as e:
            raise ClientAborted("the client closed the connection during its upload") from e
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/api/`` needs ``Authorization: Bearer <token>`` of a user whose role the route allows."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise AuthError("missing 'Authorization: Bearer <token>' header")
    ctx, token = request.app[CTX], header.removeprefix("Bearer ").strip()
    user = await ctx.read(lambda: users.authenticate(ctx.conn, token))
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception  # 404/405 before any role question
    if not permits(user.role, request.match_info.handler):
        raise Forbidden(f"role {user.role} may not use {request.method} {request.path}")
    request[USER] = user
    return await handler(request)


# --- peer endpoints (signed requests; docs/protocol.md §6) -----------------------------


async def peer_card(request: web.Request) -> web.Response:
    doc = request.app[CTX].own_card()[1]
    return web.Response(text=json.dumps(doc.to_json()), content_type=JOSE)


async def peer_card_announced(request: web.Request) -> web.Response:
    """§4.4: a peer's own card, taken if the key held for it vouches for it."""
    ctx, body = request.app[CTX], await request.read()
    outcome = await ctx.write(lambda: admin.accept_announced_card(ctx, body))
    return web.json_response({"status": outcome})


async def peer_evaluate(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: provider.answer_evaluate(ctx, body, transport)))


async def peer_consistency(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: provider.answer_consistency(ctx, body, transport)))


async def peer_key_pins(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: key_pin_exchange.answer_key_pins(ctx, body, transport)))


async def peer_held_head(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: answer_held_head(ctx, body, transport)))


async def peer_tag_set(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: provider.answer_tag_set(ctx, body, transport)))


async def health(request: web.Request) -> web.Response:
    """Liveness (node/flows/readiness.py): 200 while the node answers at all."""
    return web.json_response(readiness.liveness(request.app[CTX]))


NOT_READY = "https://vhnode.nl/problems/not_ready"


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, for a monitor's or an admin's bearer token (docs/operations.md)."""
    ctx = request.app[CTX]
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise AuthError("missing 'Authorization: Bearer <token>' header")
    token = header.removeprefix("Bearer ").strip()
    user = await ctx.read(lambda: users.authenticate(ctx.conn, token))
    if user.role not in ("monitor", "admin"):
        raise Forbidden(f"role {user.role} may not use {request.method} {request.path}")
    resp = web.Response(body=await monitoring.scrape(ctx))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when every check passes, else 503 problem+json naming the failed ones."""
    ctx = request.app[CTX]
    checks = await readiness.readiness(ctx)
    listed = [c.as_json() for c in checks]
    failed = [c.name for c in checks if not c.ok]
    if not failed:
        return web.json_response({"status": "ready", "node_id": ctx.node_id, "checks": listed})
    logger.warning("not_ready", failed=failed)
    body = {
        "type": NOT_READY,
        "title": "Not ready",
        "status": 503,
        "detail": "failed: " + ", ".join(failed),
        "instance": request.path,
        "failed": failed,
        "checks": listed,
    }
    return web.Response(status=503, text=json.dumps(body), content_type=PROBLEM)


# --- local API (bearer tokens; docs/api.md) --------------------------------------------


@roles("source")
async def put_registration(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    data = await json_object(request)
    ref = request.match_info["ref"]
    if data.setdefault("ref", ref) != ref:
        raise InputError("'ref' in the body differs from the URL")
    today = amsterdam_date(ctx.clock.now())
    reg, actor = parse_registration(data, today=today), request[USER].name
    summary = await ctx.write(lambda: apply_changes(ctx, [reg], actor=actor))
    ctx.metrics.registrations_changed(summary.upserted, summary.unchanged, 0)
    return web.json_response(
        {"ref": ref, "changed": summary.upserted == 1, "tag_set_versions": summary.published}
    )


@roles("source")
async def delete_registration(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    ref, actor = request.match_info["ref"], request[USER].name
    summary = await ctx.write(lambda: apply_changes(ctx, [], [ref], actor=actor))
    if summary.removed == 0:
        raise NotFound(f"no registration {ref}")
    ctx.metrics.registrations_changed(0, 0, summary.removed)
    return web.json_response({"ref": ref, "removed": True, "tag_set_versions": summary.published})


class BekendheidQuery(BaseModel):
    """Body of POST /api/v1/bekendheid (docs/api.md)."""

    model_config = ConfigDict(extra="forbid")
    convenant_id: str = Field(pattern=ID_PATTERN)
    purpose: str = Field(pattern=ID_PATTERN)
    case_ref: str = Field(min_length=1, max_length=128)
    # Parsed one by one with parse_identifier, so an invalid BSN has the same problem type
    # (invalid_bsn) here as in a registration.
    subjects: list[dict[str, Any]] = Field(min_length=1, max_length=64)
    partners: list[str] | None = None
    # Shorter than the node's [peers] round_deadline_seconds if the case software waits
    # less; never longer.
    deadline_seconds: float | None = Field(None, gt=0, le=300)


@roles("coordinator")
async def post_bekendheid(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    data = await json_object(request)
    try:
        q = BekendheidQuery.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{where}: {first['msg']}") from e
    subjects: list[SubjectIdentifier] = []
    today = amsterdam_date(ctx.clock.now())
    for i, raw in enumerate(q.subjects):
        try:
            subjects.append(parse_identifier(raw, today=today))
        except InputError as e:
            raise type(e)(f"subjects.{i}: {e.detail}") from e
    result = await ask_bekendheid(
        ctx,
        request.app[SESSION],
        q.convenant_id,
        q.purpose,
        q.case_ref,
        request[USER].name,
        subjects,
        q.partners,
        q.deadline_seconds,
    )
    # Echoed masked, in request order: which subject a per-subject status is about, for
    # the coordinator of a family round, without sending an identifier back in full.
    body = {
        **result.as_json(),
        "subjects": [{"kind": s.kind, "masked": masked(s)} for s in subjects],
    }
    return web.json_response(body)


@roles("privacy_officer")
async def post_audit_cross_check(request: web.Request) -> web.Response:
    """§9.4: check the peers' logs against the heads we hold (all, or ?peer=… repeated)."""
    ctx = request.app[CTX]
    named = request.query.getall("peer", []) or None
    results = await cross_check(ctx, request.app[SESSION], named)
    return web.json_response({"peers": [r.as_json() for r in results]})


@roles("privacy_officer")
async def get_audit_verify(request: web.Request) -> web.Response:
    """Verify the log and record that it was verified (``audit.verified``, docs/audit.md)."""
    report, _ = await verification.verify_and_record(request.app[CTX], request[USER].name)
    return web.json_response(admin.verify_report_json(report))


REPORT_PARAMS = frozenset(
    {"from", "to", "convenant", "purpose", "party", "user", "format"}
    | {"subjects_per_day", "requests_per_minute"}
)


@roles("privacy_officer")
async def get_audit_report(request: web.Request) -> web.Response:
    """docs/audit.md "Report": the period's figures and unusual patterns, JSON or CSV."""
    ctx = request.app[CTX]
    q = request.query
    unknown = sorted(set(q) - REPORT_PARAMS)
    if unknown:  # a misspelt filter must not silently widen the report
        raise InputError(f"unknown query parameter {unknown[0]!r}")
    if any(len(q.getall(k)) > 1 for k in q):
        raise InputError("each query parameter may be given once")
    fmt = q.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InputError("format must be json or csv")
    filters = report.parse_filters(
        start=q.get("from"),
        end=q.get("to"),
        convenant=q.get("convenant"),
        purpose=q.get("purpose"),
        party=q.get("party"),
        user=q.get("user"),
    )
    thresholds = report.parse_thresholds(q.get("subjects_per_day"), q.get("requests_per_minute"))
    now = ctx.clock.now()
    rep = await ctx.long_read(report.report_for, ctx.node_id, now, filters, thresholds)
    if fmt == "csv":
        return web.Response(text=render.csv_text(rep), content_type="text/csv", charset="utf-8")
    return web.json_response(rep.as_json())


@roles("privacy_officer")
async def post_audit_inzage(request: web.Request) -> web.Response:
    """docs/audit.md "Access request": every logged processing about one person."""
    ctx = request.app[CTX]
    today = amsterdam_date(ctx.clock.now())
    identifiers, request_ref = inzage.parse_request(await json_object(request), today=today)
    rep = await inzage.answer(ctx, identifiers, request[USER].name, request_ref)
    return web.json_response(rep.as_json())


@roles("coordinator", "liaison", "privacy_officer", "source")
async def get_node(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response(await ctx.read(lambda: admin.status(ctx)))


async def purge_due(ctx: NodeContext) -> None:
    """One retention pass, in small write jobs so answers keep flowing between them."""
    purged = 0
    while batch := await ctx.write(lambda: admin.purge_expired(ctx)):
        purged += len(batch)
    if purged:
        await ctx.write(lambda: db.flush_deleted(ctx.conn))
        logger.info("retention_purged", registrations=purged)
    details = await ctx.write(lambda: requester.purge_due(ctx))
    if details:
        logger.info("retention_purged", received_details=details)
    requests, notices = await ctx.write(lambda: detail_provider.purge_records(ctx))
    if requests or notices:
        logger.info("retention_purged", detail_requests=requests, hit_notices=notices)
    sessions = await ctx.write(lambda: signin.expire_sessions(ctx))
    if sessions:
        logger.info("retention_purged", web_sessions=sessions)


def make_app(ctx: NodeContext) -> web.Application:
    app = web.Application(
        middlewares=[
            problem_middleware,
            tls_listener_middleware,
            peer_guard_middleware,
            auth_middleware,
            body_middleware,
        ],
        client_max_size=ctx.cfg.http.max_body_bytes,
    )
    app[CTX] = ctx
    limits = ctx.cfg.limits
    app[GUARD] = PeerGuard(
        limits.bad_peer_requests_per_minute,
        limits.bad_peer_request_burst,
        limits.peer_addresses_tracked,
    )

    async def client_session(app: web.Application) -> Any:
        # One session per node, reused; per-partner timeouts are applied per call.
        # A pooled connection is given up before a partner's listener would close it
        # (its [http] header_timeout_seconds, 10 s by default): reusing one the partner is
        # closing at that instant would turn a healthy partner into 'unreachable'.
        connector = aiohttp.TCPConnector(keepalive_timeout=PEER_KEEPALIVE_SECONDS)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=ctx.cfg.peers.timeout_seconds),
            headers={"User-Agent": f"vhnode/{ctx.node_id}"},
        ) as session:
            app[SESSION] = session
            yield

    async def database(app: web.Application) -> Any:
        # Writer and reader threads for the life of the app: no SQLite on the loop.
        ctx.start_database()
        yield
        await ctx.stop_database()

    async def retention(app: web.Application) -> Any:
        # Registrations past their retain_until day leave on time while the node runs.
        async def loop() -> None:
            ON_LOOP.set(True)
            try:  # a key change this node was making when it stopped starts over (§6.1.1)
                await ctx.write(lambda: key_epochs.reset_interrupted(ctx))
            except (VhnodeError, sqlite3.Error) as e:
                logger.warning("oprf_epoch_reset_failed", error=type(e).__name__)
            while True:
                try:
                    await purge_due(ctx)
                except (VhnodeError, sqlite3.Error) as e:  # locked or broken: retry later
                    logger.warning("retention_failed", error=type(e).__name__)
                try:
                    # OPRF key epochs on schedule (§6.1.1): checked with the same pass.
                    await key_epochs.change_due(ctx)
                except (VhnodeError, sqlite3.Error) as e:
                    logger.warning("oprf_epoch_change_failed", error=type(e).__name__)
                await ctx.clock.sleep(ctx.cfg.retention.purge_interval_seconds)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def background(app: web.Application) -> Any:
        # Work a request left running (tag-set transfers, hit notices) stops before the
        # client session and the database it uses are closed.
        yield
        pending = list(ctx.background)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    app.cleanup_ctx.append(database)

    async def unauthenticated_counts(app: web.Application) -> Any:
        # One log entry per closed window and claimed requester (§6.6); the rest at stop.
        async def loop() -> None:
            ON_LOOP.set(True)
            while True:
                # Real time, not the node clock: tests that wait for the node clock to
                # sleep mean the retention task (node/clock.py ManualClock.until_sleeping).
                await asyncio.sleep(min(ctx.cfg.limits.unauthenticated_window_seconds, 60.0))
                try:
                    await ctx.write(lambda: unauthenticated.flush(ctx))
                except (VhnodeError, sqlite3.Error) as e:  # locked or broken: retry later
                    logger.warning("unauthenticated_flush_failed", error=type(e).__name__)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await ctx.write(lambda: unauthenticated.flush(ctx, everything=True))
        except (VhnodeError, sqlite3.Error) as e:
            logger.warning("unauthenticated_flush_failed", error=type(e).__name__)

    async def tls_trust(app: web.Application) -> Any:
        # A card added or updated (web app, CLI in another process) lets its node's TLS
        # handshakes in within a second, without a restart; the pin is checked per request.
        async def loop() -> None:
            ON_LOOP.set(True)
            while True:
                await asyncio.sleep(TLS_TRUST_REFRESH_SECONDS)
                try:
                    trusted = await ctx.read(ctx.trust)
                except (VhnodeError, sqlite3.Error) as e:  # locked or broken: retry later
                    logger.warning("tls_trust_refresh_failed", error=type(e).__name__)
                    continue
                added = ctx.trust_peer_certificates(trusted)
                if added:
                    logger.info("tls_trust_refreshed", certificates_added=added)

        # In CA mode the CA is the trust store: nothing to add.
        needed = ctx.tls_files is not None and ctx.tls_files.ca_file is None
        task = asyncio.create_task(loop()) if needed else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restore_check(app: web.Application) -> Any:
        # A restored copy learns which of its heads the peers hold before the node listens
        # and signs anything (docs/protocol.md §9.7); a no-op on any other database.
        await check_restored(ctx, app[SESSION])
        yield

    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(tls_trust)
    app.cleanup_ctx.append(restore_check)

    async def announce(app: web.Application) -> Any:
        # After a key rotation: partners take the cross-signed card without an admin.
        async def run() -> None:
            ON_LOOP.set(True)
            try:
                await card_announce.announce_rotation(ctx, app[SESSION])
            except (VhnodeError, sqlite3.Error) as e:
                logger.warning("card_announce_failed", error=type(e).__name__)

        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(announce)
    app.cleanup_ctx.append(background)
    app.cleanup_ctx.append(retention)
    app.cleanup_ctx.append(unauthenticated_counts)
    app.router.add_routes(provider_routes.ROUTES + requester_routes.ROUTES)
    app.router.add_routes(
        [
            web.get("/healthz", health),
            web.get("/readyz", ready),
            web.get("/metrics", metrics),
            web.get("/peer/v1/card", peer_card),
            web.post("/peer/v1/card", peer_card_announced),
            web.post("/peer/v1/evaluate", peer_evaluate),
            web.post("/peer/v1/tag-set", peer_tag_set),
            web.post("/peer/v1/log/consistency", peer_consistency),
            web.post("/peer/v1/key-pins", peer_key_pins),
            web.post("/peer/v1/log/held-head", peer_held_head),
            web.post("/api/v1/audit/cross-check", post_audit_cross_check),
            web.get("/api/v1/node", get_node),
            web.put("/api/v1/registrations/{ref}", put_registration),
            web.delete("/api/v1/registrations/{ref}", delete_registration),
            web.post("/api/v1/bekendheid", post_bekendheid),
            web.get("/api/v1/audit/verify", get_audit_verify),
            web.get("/api/v1/audit/report", get_audit_report),
            web.post("/api/v1/audit/inzage", post_audit_inzage),
        ]
    )
    # The web application (docs/webapp.md): its own middlewares, the same flows and roles.
    app.add_subapp(WEBAPP_PREFIX, make_webapp(ctx))
    app.router.add_get("/app", to_webapp)
    return app


async def to_webapp(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(WEBAPP_PREFIX + "/")


__all__ = ["CTX", "User", "make_app"]

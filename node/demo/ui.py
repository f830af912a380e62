"""``vhnode demo --ui``: the demo federation kept running for people to sign in to its web app.

Before the nodes start, every node gets web users with a password and a TOTP second
factor, through ``signin.set_credentials`` — the flow of ``vhnode user add --password``,
so a demo login is a real login: no bypass exists to be left switched on. The
Veiligheidshuis node gets a coordinator, the partners a liaison; every node a privacy
officer and an admin. Passwords are random per run and printed with the TOTP secrets and
their otpauth:// URIs (docs/demo.md "The web app").

After the scripted run the partner stopped for the "partner-down" question is started
again, and the coordinator asks politie for detail once more without anyone deciding, so
the politie liaison's inbox holds a request to decide. Then the demo waits; Ctrl-C or
SIGTERM ends the wait normally and ``run_demo`` stops every process and verifies the logs.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from node.demo.federation import DemoNode, Tokens, http_json, start_nodes, wait_healthy
from node.demo.partners import (
    ANTECEDENTS,
    CONTACT,
    CONVENANT_ID,
    COORDINATOR_NODE,
    COORDINATOR_USER,
    DETAIL_PARTNER,
    LIAISON_USER,
    DemoError,
)
from node.demo.scenario import Scenario
from node.flows import admin, signin
from node.flows.context import open_node
from node.store import users

# Who signs in where: the Veiligheidshuis prepares case conferences, the partners decide
# detail requests; every node has its own privacy officer and admin.
COORDINATOR_ROLES = ("coordinator", "privacy_officer", "admin")
PARTNER_ROLES = ("liaison", "privacy_officer", "admin")
# The user name of a role at a node: the token users of the scripted run where they exist.
NAME_PREFIX = {
    "coordinator": "coordinator",
    "liaison": "liaison",
    "privacy_officer": "fg",
    "admin": "beheerder",
}
PASSWORD_BYTES = 12  # 16 URL-safe characters: above signin.MIN_PASSWORD_CHARS
LOGINS_FILE = "logins.json"
# The case reference of the request left undecided for the liaison.
OPEN_CASE_REF = "ZVH-BRD-2026-0100"
WATCH_SECONDS = 0.5


@dataclass(frozen=True)
class WebLogin:
    node_id: str
    role: str
    user: str
    password: str
    totp_secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class UiFederation:
    """The running federation as a person (or the screenshot script) uses it."""

    root: Path
    nodes: Sequence[DemoNode]
    logins: Sequence[WebLogin]
    open_request: str | None  # trace id of the detail request waiting for the liaison
    scenario: Scenario  # the synthetic people and the questions asked about them

    def url(self, node_id: str) -> str:
        return next(n.url for n in self.nodes if n.node_id == node_id) + "/app/"

    def login(self, node_id: str, role: str) -> WebLogin:
        return next(x for x in self.logins if (x.node_id, x.role) == (node_id, role))


def roles_at(node_id: str) -> tuple[str, ...]:
    return COORDINATOR_ROLES if node_id == COORDINATOR_NODE else PARTNER_ROLES


def user_name(role: str, node_id: str) -> str:
    return f"{NAME_PREFIX[role]}-{node_id}"


def enrol_web_users(nodes: Sequence[DemoNode]) -> list[WebLogin]:
    """Create the web users of every (stopped) node with a password and a second factor."""
    assert user_name("coordinator", COORDINATOR_NODE) == COORDINATOR_USER
    assert user_name("liaison", DETAIL_PARTNER) == LIAISON_USER
    logins = []
    for node in nodes:
        ctx = open_node(node.home)
        try:
            existing = {str(u["name"]) for u in users.all_users(ctx.conn)}
            for role in roles_at(node.node_id):
                name = user_name(role, node.node_id)
                if name not in existing:  # the scripted run's token users exist
                    admin.create_user(ctx, name, role)
                password = secrets.token_urlsafe(PASSWORD_BYTES)
                enrolment = signin.set_credentials(ctx, name, password, new_second_factor=True)
                assert enrolment is not None
                logins.append(
                    WebLogin(node.node_id, role, name, password, enrolment.secret, enrolment.uri)
                )
        finally:
            ctx.close()
    return logins


def make_ready(
    root: Path,
    nodes: Sequence[DemoNode],
    logins: Sequence[WebLogin],
    scenario: Scenario,
    tokens: Tokens,
    health_deadline_s: float,
) -> UiFederation:
    """Every node running again, a detail request waiting for the liaison, the logins
    written to ``root/logins.json`` (0600: it holds passwords)."""
    stopped = [n for n in nodes if n.process is None or n.process.poll() is not None]
    if stopped:
        start_nodes(stopped)
        wait_healthy(stopped, health_deadline_s)
    by_id = {n.node_id: n for n in nodes}
    open_request = _leave_open_request(by_id[COORDINATOR_NODE].url, scenario, tokens)
    path = root / LOGINS_FILE
    path.touch(mode=0o600)
    path.write_text(
        json.dumps(
            {
                "nodes": {n.node_id: n.url + "/app/" for n in nodes},
                "logins": [asdict(x) for x in logins],
            },
            indent=2,
        )
        + "\n"
    )
    return UiFederation(root, nodes, logins, open_request, scenario)


def _leave_open_request(vh: str, scenario: Scenario, tokens: Tokens) -> str | None:
    """Ask bekendheid for the detail case's person under a new case reference, then ask
    politie for a category that waits for its liaison (and one shared at once)."""
    case = scenario.detail_case
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": case.purpose,
        "case_ref": OPEN_CASE_REF,
        "subjects": [case.subject.wire],
    }
    status, result = http_json("POST", vh + "/api/v1/bekendheid", tokens.coordinator, body)
    if status != 200 or not isinstance(result, dict):
        raise DemoError(f"the round for the open detail request: HTTP {status}: {result}")
    status, asked = http_json(
        "POST",
        vh + "/api/v1/details",
        tokens.coordinator,
        {
            "round_trace_id": result["trace_id"],
            "partner": case.partner,
            "subject": 0,
            "categories": [CONTACT, ANTECEDENTS],
            "purpose": case.purpose,
            "case_ref": OPEN_CASE_REF,
        },
    )
    if status != 200 or not isinstance(asked, dict):
        raise DemoError(f"the open detail request: HTTP {status}: {asked}")
    return str(asked["trace_id"]) if asked.get("outcome") == "answered" else None


def login_lines(fed: UiFederation) -> list[str]:
    """What a person needs to sign in, node by node (docs/demo.md "The web app")."""
    code = shlex.join(
        [sys.executable, "-c", "import pyotp,sys; print(pyotp.TOTP(sys.argv[1]).now())"]
    )
    lines = [
        "",
        "The web app of every node is running (127.0.0.1 only; synthetic data).",
        "Sign in with a user, its password and the 6-digit code of an authenticator app",
        "holding its TOTP secret (or add the otpauth:// URI to the app). A code now, without",
        f"an app: {code} SECRET",
        f"The logins are also in {fed.root / LOGINS_FILE} (readable by you only).",
    ]
    if fed.open_request is not None:
        lines.append(
            f"A detail request of {COORDINATOR_NODE} ({OPEN_CASE_REF}) waits in the inbox of "
            f"{LIAISON_USER}."
        )
    for node in fed.nodes:
        lines += ["", f"{node.node_id}  {node.spec.organisation}", f"  web app: {node.url}/app/"]
        for x in (x for x in fed.logins if x.node_id == node.node_id):
            lines += [
                f"  {x.role:<16} user {x.user}  password {x.password}",
                f"  {'':<16} TOTP secret {x.totp_secret}",
                f"  {'':<16} {x.otpauth_uri}",
            ]
    lines += ["", "ready: press Ctrl-C to stop every node (or send SIGTERM)."]
    return lines


def wait_for_stop(fed: UiFederation, say: Callable[[str], None]) -> None:
    """Block until Ctrl-C or SIGTERM (both arrive as KeyboardInterrupt); say so when a
    node process ends by itself meanwhile."""
    told: set[str] = set()
    # Started in the background by a shell, a process inherits SIGINT ignored; waiting for
    # Ctrl-C is what --ui is for, so SIGINT stops it however it was started.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(WATCH_SECONDS)
            for node in fed.nodes:
                proc = node.process
                if proc is not None and proc.poll() is not None and node.node_id not in told:
                    told.add(node.node_id)
                    say(
                        f"node {node.node_id} stopped by itself (exit code {proc.returncode}); "
                        f"its stderr: {node.stderr_path}"
                    )
    except KeyboardInterrupt:
        say("stopping every node")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def hold(say: Callable[[str], None]) -> Callable[[UiFederation], Any]:
    """The ``--ui`` step of ``run_demo``: print the logins, wait for Ctrl-C."""

    def step(fed: UiFederation) -> None:
        for line in login_lines(fed):
            say(line)
        wait_for_stop(fed, say)

    return step

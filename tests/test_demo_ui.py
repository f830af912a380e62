"""`vhnode demo --ui` as a person runs it: a real process, its printed logins, Ctrl-C.

The demo is started as its own process; the test reads the URLs and logins it prints,
signs in over HTTP on two nodes with a printed password and a TOTP code made from the
printed secret (no bypass: the node checks both as for any user), then sends SIGINT (or
SIGTERM) and checks that the demo exits 0 and that none of its node processes is left.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

import pyotp
import pytest

from node.demo.partners import COORDINATOR_NODE, DETAIL_PARTNER, PARTNERS

READY_DEADLINE_S = 240.0
EXIT_DEADLINE_S = 60.0
ROOT = Path(__file__).resolve().parents[1]
_NODE = re.compile(r"^(\S+)  .+$")
_URL = re.compile(r"^  web app: (http://127\.0\.0\.1:\d+/app/)$")
_LOGIN = re.compile(r"^  (\w+)\s+user (\S+)  password (\S+)$")
_SECRET = re.compile(r"^\s+TOTP secret ([A-Z2-7]+)$")
_URI = re.compile(r"^\s+(otpauth://totp/\S+)$")
_TOKEN = re.compile(r'name="form_token" value="([0-9a-f]+)"')


@dataclass
class Login:
    user: str
    password: str
    secret: str = ""
    uri: str = ""


@dataclass
class Printed:
    urls: dict[str, str]
    logins: dict[tuple[str, str], Login]
    text: str
    more: Queue[str]  # what the demo prints after ``ready:``
    reader: threading.Thread

    def rest(self) -> str:
        """The output after ``ready:``, once the demo has exited."""
        self.reader.join(timeout=EXIT_DEADLINE_S)
        out = []
        while not self.more.empty():
            out.append(self.more.get())
        return "".join(out)


def _read_until_ready(proc: subprocess.Popen[str]) -> Printed:
    """The demo's output up to its ``ready:`` line, parsed as a person would read it."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[str] = []
    # A thread reads, so the deadline holds however the output is buffered.
    queue: Queue[str] = Queue()

    def read() -> None:
        for line in iter(stdout.readline, ""):
            queue.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_DEADLINE_S
    while not (lines and lines[-1].startswith("ready:")):
        try:
            line = queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            code = proc.poll()
            raise AssertionError(
                f"no ready line in time (exit code {code}):\n" + "\n".join(lines[-40:])
            ) from None
        lines.append(line.rstrip("\n"))
    urls: dict[str, str] = {}
    logins: dict[tuple[str, str], Login] = {}
    node = ""
    last: Login | None = None
    for line in lines:
        if m := _URL.match(line):
            urls[node] = m.group(1)
        elif m := _LOGIN.match(line):
            last = Login(m.group(2), m.group(3))
            logins[(node, m.group(1))] = last
        elif (m := _SECRET.match(line)) and last is not None:
            last.secret = m.group(1)
        elif (m := _URI.match(line)) and last is not None:
            last.uri = m.group(1)
        elif (m := _NODE.match(line)) and m.group(1) in {p.node_id for p in PARTNERS}:
            node = m.group(1)
    return Printed(urls, logins, "\n".join(lines), queue, reader)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _sign_in(url: str, login: Login) -> tuple[int, str, str]:
    """Sign in through the web app's form with the password and a fresh TOTP code:
    (status, the URL it ended on, the page's text)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    with opener.open(url + "aanmelden", timeout=30) as resp:
        token = _TOKEN.search(resp.read().decode())
    assert token is not None
    form = urllib.parse.urlencode(
        {
            "form_token": token.group(1),
            "gebruikersnaam": login.user,
            "wachtwoord": login.password,
            "code": pyotp.TOTP(login.secret).now(),
        }
    ).encode()
    try:
        with opener.open(url + "aanmelden", data=form, timeout=30) as resp:
            return int(resp.status), str(resp.url), resp.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), str(e.url), e.read().decode()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_demo_ui_prints_logins_that_sign_in_and_stops_every_process(
    tmp_path: Path, stop: signal.Signals
) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "demo", "--ui", "--subjects-per-partner", "50",
         "--seed", "11", "--keep", str(tmp_path / "fed")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        printed = _read_until_ready(proc)
        children = _children(proc.pid)

        assert set(printed.urls) == {p.node_id for p in PARTNERS}
        assert len(children) == len(PARTNERS)
        assert all(_alive(c) for c in children)
        assert "demo bypass" not in printed.text.lower()
        for p in PARTNERS:
            roles = (
                {"coordinator", "privacy_officer", "admin"}
                if p.node_id == COORDINATOR_NODE
                else {"liaison", "privacy_officer", "admin"}
            )
            assert {r for n, r in printed.logins if n == p.node_id} == roles
        for login in printed.logins.values():
            assert len(login.password) >= 12
            assert login.uri.startswith(f"otpauth://totp/vhnode:{login.user}%40")
            assert f"secret={login.secret}" in login.uri
        # the logins file says the same, readable by the owner only
        assert (tmp_path / "fed" / "logins.json").stat().st_mode & 0o077 == 0

        coordinator = printed.logins[(COORDINATOR_NODE, "coordinator")]
        status, landed, start = _sign_in(printed.urls[COORDINATOR_NODE], coordinator)
        # redirected to the start page: signed in
        assert (status, landed) == (200, printed.urls[COORDINATOR_NODE]), start[:500]
        assert coordinator.user in start
        assert "coördinator" in start
        liaison = printed.logins[(DETAIL_PARTNER, "liaison")]
        status, landed, start = _sign_in(printed.urls[DETAIL_PARTNER], liaison)
        assert (status, landed) == (200, printed.urls[DETAIL_PARTNER]), start[:500]
        assert liaison.user in start
        assert "contactpersoon" in start
        # a wrong code is refused like for any user: there is no demo bypass
        wrong = Login(liaison.user, liaison.password, pyotp.random_base32())
        status, landed, _ = _sign_in(printed.urls[DETAIL_PARTNER], wrong)
        assert status == 401
        assert landed.endswith("/app/aanmelden")

        proc.send_signal(stop)
        proc.wait(timeout=EXIT_DEADLINE_S)
        rest = printed.rest()
    finally:
        # A failed assertion above: let the demo stop its nodes (SIGKILL to it alone
        # would leave them running), and make sure of it.
        if proc.poll() is None:
            children = _children(proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=EXIT_DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, rest[-3000:]
    assert "stopping every node" in rest
    assert "OK: every answer" in rest
    left = [c for c in children if _alive(c)]
    assert not left, f"node processes left after {stop.name}: {left}"
    assert _children(proc.pid) == []

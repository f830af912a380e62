"""`vhnode serve` as systemd runs it: a real process, a real notify socket, real signals.

systemd gives a ``Type=notify`` service ``$NOTIFY_SOCKET`` (a unix datagram socket it
reads) and connects its standard error to the journal, naming that stream in
``$JOURNAL_STREAM``. Here the test is the service manager: it binds the socket, hands the
node a file as standard error with that file's device and inode in ``$JOURNAL_STREAM``,
and sends the signals ``systemctl reload`` and ``systemctl stop`` send.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.federation import free_port

NODE_ID = "politie-svc"
# An ISO 8601 time as the JSON lines carry it: the journal lines must not.
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def vhnode(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def init_node(home: Path, port: int) -> None:
    vhnode(
        "init", "--home", str(home), "--node-id", NODE_ID, "--organisation", "Politie Svc",
        "--org-type", "politie", "--endpoint", f"http://127.0.0.1:{port}", "--port", str(port),
    )  # fmt: skip


class Manager:
    """The service manager's side of sd_notify: the datagrams the node sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def close(self) -> None:
        self.sock.close()


@contextmanager
def service(
    home: Path, tmp: Path, journal: bool = True
) -> Iterator[tuple[subprocess.Popen[bytes], Manager, Path]]:
    manager = Manager(tmp / "notify.sock")
    log = tmp / "stderr.log"
    with log.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
        env["NOTIFY_SOCKET"] = str(manager.path)
        if journal:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "serve", "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        yield proc, manager, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        manager.close()


def until(probe: Callable[[], Any], proc: subprocess.Popen[bytes]) -> Any:
    """``probe()`` once it returns something and raises no OSError (the node is still
    starting, or not reloaded yet); the node must stay up meanwhile."""
    deadline = time.monotonic() + 30
    while True:
        try:
            found = probe()
        except OSError:
            found = None
        if found is not None:
            return found
        assert proc.poll() is None, "the node stopped"
        assert time.monotonic() < deadline, "the node did not get there in 30 s"
        time.sleep(0.05)


def get_card(port: int) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/peer/v1/card", timeout=10) as resp:
        return json.loads(resp.read())


def test_ready_reload_and_stop_are_told_to_systemd_and_logged_for_the_journal(
    tmp_path: Path,
) -> None:
    home, port = tmp_path / "home", free_port()
    init_node(home, port)
    first = json.loads((home / "card.json").read_text())
    with service(home, tmp_path) as (proc, manager, log):
        ready = manager.next()
        assert ready["READY"] == "1", ready
        assert ready["STATUS"] == f"serving at http://127.0.0.1:{port}"
        assert get_card(port) == first

        # The admin renews the card with the node running; a reload serves it.
        vhnode("card", "renew", "--home", str(home), "--days", "30")
        renewed = json.loads((home / "card.json").read_text())
        assert renewed != first
        assert get_card(port) == first  # read once, at start
        proc.send_signal(signal.SIGHUP)
        assert manager.next() == {"RELOADING": "1"}
        assert manager.next() == {"READY": "1", "STATUS": "serving"}
        assert get_card(port) == renewed

        # A setting a reload does not take is named in the log.
        config = home / "node.toml"
        config.write_text(
            config.read_text().replace("max_connections = 256", "max_connections = 300")
        )
        proc.send_signal(signal.SIGHUP)
        assert manager.next() == {"RELOADING": "1"}
        assert manager.next()["READY"] == "1"

        # A card that does not verify is not served; the node keeps the one it has.
        (home / "card.json").write_text('{"payload": "not a card"}\n')
        proc.send_signal(signal.SIGHUP)
        assert manager.next() == {"RELOADING": "1"}
        assert manager.next() == {
            "READY": "1",
            "STATUS": "reload failed; serving the card held",
        }
        assert proc.poll() is None
        assert get_card(port) == renewed

        proc.send_signal(signal.SIGTERM)
        assert manager.next() == {"STOPPING": "1"}
        assert proc.wait(30) == 0
        lines = log.read_text().splitlines()

    # One line per event, its priority first, no timestamp, no colour.
    assert lines, "nothing logged"
    for line in lines:
        assert re.match(r"^<[0-7]>[a-z_]+( |$)", line), line
        assert "timestamp" not in line, line
        assert "\x1b[" not in line, line
    events = [line.split(" ", 1)[0] for line in lines]
    assert events[0] == "<6>listening"
    assert events.count("<6>reloaded") == 2
    assert events.count("<3>reload_failed") == 1
    assert events[-1] == "<6>stopping"
    restart = [line for line in lines if line.startswith("<6>reloaded")][1]
    assert restart.endswith(" restart_needed_for=http"), restart
    assert "restart_needed_for" not in next(line for line in lines if "reloaded" in line)
    failed = next(line for line in lines if line.startswith("<3>reload_failed"))
    assert f"node_id={NODE_ID}" in failed, failed
    assert "card.json" in failed, failed


def test_journal_lines_by_config_and_json_lines_otherwise(tmp_path: Path) -> None:
    """Without systemd the log is JSON lines with a timestamp; `[logging] format =
    "journal"` asks for journal lines anyway (a unit that sends standard error through
    another program, say)."""
    home, port = tmp_path / "home", free_port()
    init_node(home, port)

    def run_once(journal_env: bool) -> list[str]:
        with service(home, tmp_path, journal=journal_env) as (proc, manager, log):
            assert manager.next()["READY"] == "1"
            proc.send_signal(signal.SIGTERM)
            assert manager.next() == {"STOPPING": "1"}
            assert proc.wait(30) == 0
            (tmp_path / "notify.sock").unlink()
            return log.read_text().splitlines()

    plain = run_once(journal_env=False)
    first = json.loads(plain[0])
    assert first["event"] == "listening", first
    assert TIMESTAMP.match(first["timestamp"]), first

    config = home / "node.toml"
    config.write_text(config.read_text().replace('format = "auto"', 'format = "journal"'))
    assert 'format = "journal"' in config.read_text()
    journal = run_once(journal_env=False)
    assert journal[0].startswith("<6>listening "), journal
    assert "timestamp" not in journal[0]


def test_a_node_not_run_by_systemd_tells_nobody(tmp_path: Path) -> None:
    """No $NOTIFY_SOCKET (a shell, a container's entrypoint): serve starts and stops as
    before, and a SIGHUP reloads there too."""
    home, port = tmp_path / "home", free_port()
    init_node(home, port)
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--home", str(home)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        first = json.loads((home / "card.json").read_text())
        assert until(lambda: get_card(port), proc) == first
        vhnode("card", "renew", "--home", str(home), "--days", "30")
        renewed = json.loads((home / "card.json").read_text())
        proc.send_signal(signal.SIGHUP)
        until(lambda: renewed if get_card(port) == renewed else None, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        events = [json.loads(line)["event"] for line in err.decode().splitlines()]
        assert events == ["listening", "reloaded", "stopping"], events
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

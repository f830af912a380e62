"""A node home is the node user's alone (README "Setting up a real node").

``node.db`` holds registry identifiers in clear, detail texts and case references. Real
``vhnode`` processes, started with the common umask 022, in a home folder that exists
already with mode 0755 (the README's ``/srv/vhnode``): ``init`` closes the folder and
writes every file 0600, the database's WAL and shared-memory files included; every
command — ``serve`` too — refuses to run, with one line naming the file and the chmod,
when the home, the database or the source system's token file is open to others.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vhnode(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=0o022,
    )


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a refused command."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An existing, empty home folder of mode 0755, then ``vhnode init`` in it."""
    home = tmp_path / "srv-vhnode"
    home.mkdir()
    home.chmod(0o755)
    port = free_port()
    result = vhnode(
        home,
        "init",
        "--node-id",
        "politie-test",
        "--organisation",
        "Politie testregio",
        "--org-type",
        "politie",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--port",
        str(port),
    )
    assert result.returncode == 0, result.stderr
    return home


def test_init_in_an_existing_open_folder_closes_it_and_writes_every_file_0600(
    home: Path,
) -> None:
    assert mode(home) == 0o700
    assert mode(home / "keys") == 0o700
    files = sorted(p for p in home.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {
        "node.toml",
        "card.json",
        "node.db",
        "signing.key",
        "encryption.key",
        "oprf.seed",
    }
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_the_running_servers_database_files_are_0600(home: Path) -> None:
    port = int(
        next(
            line.split("=")[1]
            for line in (home / "node.toml").read_text().splitlines()
            if line.startswith("port")
        )
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o022,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # The server holds the database open in WAL mode: its companions exist now.
        side = [home / "node.db-wal", home / "node.db-shm"]
        assert all(p.exists() for p in side)
        assert [mode(p) for p in [home / "node.db", *side]] == [0o600] * 3
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("target", "open_mode", "what", "chmod"),
    [
        ("", 0o755, "node home", "chmod 700"),
        ("", 0o750, "node home", "chmod 700"),
        ("node.db", 0o644, "database file", "chmod 600"),
        ("node.db", 0o640, "database file", "chmod 600"),
        ("keys", 0o755, "key folder", "chmod 700"),
    ],
)
def test_every_command_refuses_a_home_others_can_read(
    home: Path, target: str, open_mode: int, what: str, chmod: str
) -> None:
    path = home / target if target else home
    path.chmod(open_mode)
    for args in (("user", "list"), ("serve",)):
        line = refusal(vhnode(home, *args))
        assert what in line
        assert f"{chmod} {path}" in line
    path.chmod(0o700 if path.is_dir() else 0o600)
    assert vhnode(home, "user", "list").returncode == 0


def test_a_source_token_file_others_can_read_is_refused(home: Path, tmp_path: Path) -> None:
    token = tmp_path / "source.token"
    token.write_text("s3cret-token\n")
    token.chmod(0o644)
    config = home / "node.toml"
    text = config.read_text()
    assert text.count("\n[details]\n") == 1
    config.write_text(
        text.replace("\n[details]\n", f'\n[details]\nsource_token_file = "{token}"\n')
    )
    line = refusal(vhnode(home, "user", "list"))
    assert f"details.source_token_file {token}" in line
    assert f"chmod 600 {token}" in line
    token.chmod(0o600)
    assert vhnode(home, "user", "list").returncode == 0

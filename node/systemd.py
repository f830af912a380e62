"""Running the node as a systemd service: its unit file, and telling systemd how it is.

``render_unit`` writes the unit ``vhnode service unit`` prints (config/systemd/vhnode.service
is its text for the defaults; tests/test_service.py keeps the two equal and runs
``systemd-analyze verify`` on it). ``notify`` is sd_notify(3) without libsystemd: one
datagram to ``$NOTIFY_SOCKET``, so ``Type=notify`` needs no extra dependency.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import PurePosixPath

from node.errors import ConfigError

DEFAULT_HOME = PurePosixPath("/var/lib/vhnode")
DEFAULT_USER = "vhnode"
DEFAULT_EXEC = PurePosixPath("/opt/vhnode/bin/vhnode")
STATE_ROOT = PurePosixPath("/var/lib")

# systemd splits and expands unit values on spaces, quotes, '%' and '$': a path made of
# these characters alone is written as it is, with no quoting rule to get wrong.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
# useradd's own rule for a system user's name (and systemd's User= accepts it).
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# ProtectHome=yes makes these empty and unreadable for the service.
_HIDDEN_BY_PROTECT_HOME = tuple(PurePosixPath(p) for p in ("/home", "/root", "/run/user"))


@dataclass(frozen=True)
class UnitSettings:
    home: PurePosixPath = DEFAULT_HOME
    user: str = DEFAULT_USER
    executable: PurePosixPath = DEFAULT_EXEC


def _plain(path: PurePosixPath, what: str) -> None:
    if not _PLAIN_PATH.match(str(path)) or ".." in path.parts:
        raise ConfigError(
            f"{what} {path}: use an absolute path of letters, digits, '.', '_', '-' and '/'"
        )


def _within(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or root in path.parents


def render_unit(s: UnitSettings) -> str:
    """The unit file for a node at ``s.home`` run as ``s.user`` by ``s.executable``.

    A home under /var/lib is the service's StateDirectory (systemd creates it, owned by
    the user, mode 0700); elsewhere it is a ReadWritePaths entry the admin creates.
    Raises ConfigError for a path the sandbox hides (under /home, /root) or that systemd
    would have to quote, and for a user name useradd would refuse.
    """
    _plain(s.home, "--home")
    _plain(s.executable, "--exec")
    if not _USER_NAME.match(s.user) or s.user == "root":
        raise ConfigError(
            f"--user {s.user!r}: a system user's name (lowercase letters, digits, '_' and "
            "'-'), not root"
        )
    for hidden in _HIDDEN_BY_PROTECT_HOME:
        if _within(s.home, hidden):
            raise ConfigError(
                f"--home {s.home}: ProtectHome= hides {hidden} from the service; "
                "keep the node's home under /var/lib (or /srv)"
            )
    if _within(s.home, STATE_ROOT) and s.home != STATE_ROOT:
        state = s.home.relative_to(STATE_ROOT)
        where = f"StateDirectory={state}\nStateDirectoryMode=0700\n"
    else:
        where = f"ReadWritePaths={s.home}\n"
    return UNIT_TEMPLATE.format(home=s.home, user=s.user, exe=s.executable, where=where)


UNIT_TEMPLATE = """\
# vhnode: one node of a Zorg- en Veiligheidshuis federation, as a sandboxed service.
# Made by `vhnode service unit`; install it as /etc/systemd/system/vhnode.service
# (README "Running the node as a service", docs/operations.md "Install").

[Unit]
Description=vhnode federation node ({home})
After=network-online.target
Wants=network-online.target
# A node that cannot start (a home open to other users, a bad node.toml) stops retrying
# after five tries in five minutes, instead of filling the journal.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
# READY=1 once the node listens; RELOADING=1 and READY=1 around a reload (SIGHUP).
Type=notify
NotifyAccess=main
User={user}
Group={user}
ExecStart={exe} serve --home {home}
# SIGHUP re-reads card.json (after `vhnode card renew`) and the endpoint in node.toml;
# any other change of node.toml needs `systemctl restart`.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM: stop accepting, finish the requests in progress (a round ends at its
# deadline, [peers] round_deadline_seconds, at most 300 s), close the database.
KillSignal=SIGTERM
TimeoutStopSec=330
Restart=on-failure
RestartSec=5
SyslogIdentifier=vhnode

# The node's files: the home alone is writable, and only by the node's user.
{where}UMask=0077

# The sandbox. The node needs TCP (its listener, its partners), a unix socket (the
# journal, sd_notify) and nothing else of the system.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# MemoryDenyWriteExecute= is left out: libffi (cffi, ctypes) may need memory that is
# writable and executable on some platforms, and a node killed by it loses its rounds.

[Install]
WantedBy=multi-user.target
"""


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to the service manager, as sd_notify(3) does.

    False when not run by systemd (no ``$NOTIFY_SOCKET``) or the socket is not a unix
    one; never blocks: the socket is non-blocking, and a full queue drops the message
    (systemd then learns the state from the next one or from the process exiting).
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # an abstract socket (systemd in a container)
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(state.encode("utf-8"), address)
        except OSError:
            return False
    return True

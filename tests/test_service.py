"""The systemd unit (node/systemd.py, `vhnode service unit`): systemd itself checks it.

`systemd-analyze verify` loads the unit as systemd would and names every key it does not
know, value it cannot parse and program it cannot run; `systemd-analyze security` rates
the sandbox. Both read the unit file `vhnode service unit` writes, run as its own
process. With ``CI`` set a missing systemd-analyze fails these tests (scripts/test
installs it), elsewhere it skips them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from node.systemd import UnitSettings, render_unit

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "systemd" / "vhnode.service"
# The venv's own vhnode: systemd-analyze verify checks that ExecStart can run.
VHNODE = Path(sys.executable).parent / "vhnode"
# `systemd-analyze security`'s scale: 0 (locked down) to 10 (unprotected); a unit with
# only User= set rates about 8. What the unit reaches, 1.4 with systemd 252, is "OK".
MOST_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("no systemd-analyze in CI; scripts/test installs Debian's systemd")
        pytest.skip("no systemd-analyze here (sudo apt-get install -y systemd)")
    return found


def verify(unit: Path) -> list[str]:
    """What ``systemd-analyze verify`` says about ``unit``: its complaints about this file
    (others, about units installed on the machine, are not ours), and any failure."""
    proc = subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = (proc.stdout + proc.stderr).splitlines()
    problems = [line for line in said if unit.name in line]
    if proc.returncode != 0:
        problems.append(f"exit {proc.returncode}: {said}")
    return problems


def vhnode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_vhnode_prints_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "vhnode.service"
    done = vhnode("service", "unit", "--exec", str(VHNODE), "-o", str(unit))
    assert done.returncode == 0, done.stderr
    assert verify(unit) == []
    # With its defaults it runs the vhnode it was started from (here: the venv's).
    default = vhnode("service", "unit")
    assert default.returncode == 0, default.stderr
    assert f"ExecStart={VHNODE} serve --home /var/lib/vhnode\n" in default.stdout
    (tmp_path / "default" / "vhnode.service").parent.mkdir()
    (tmp_path / "default" / "vhnode.service").write_text(default.stdout)
    assert verify(tmp_path / "default" / "vhnode.service") == []


def test_a_broken_unit_fails_the_check(tmp_path: Path) -> None:
    """The check would catch a unit systemd cannot use: a misspelt key, a value it
    cannot parse, a program that is not there."""
    good = render_unit(UnitSettings(executable=PurePosixPath(str(VHNODE))))
    broken = {
        "key": good.replace("ProtectSystem=strict", "ProtectSytem=strict"),
        "value": good.replace("Type=notify", "Type=notifying"),
        "program": good.replace(str(VHNODE), "/nonexistent/bin/vhnode"),
    }
    for what, text in broken.items():
        unit = tmp_path / what / "vhnode.service"
        unit.parent.mkdir()
        unit.write_text(text)
        assert verify(unit) != [], what


def test_the_sandbox_rates_ok_with_systemd_analyze_security(tmp_path: Path) -> None:
    unit = tmp_path / "vhnode.service"
    unit.write_text(render_unit(UnitSettings(executable=PurePosixPath(str(VHNODE)))))
    proc = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for vhnode\.service: ([0-9.]+)", proc.stdout)
    assert found is not None, proc.stdout + proc.stderr
    exposure = float(found.group(1))
    print(f"systemd-analyze security: exposure {exposure} (at most {MOST_EXPOSURE})")
    assert exposure <= MOST_EXPOSURE


def test_the_unit_runs_the_node_sandboxed_as_its_own_user() -> None:
    d = directives(render_unit(UnitSettings()))
    expected = {
        "Type": ["notify"],
        "User": ["vhnode"],
        "Group": ["vhnode"],
        "ExecStart": ["/opt/vhnode/bin/vhnode serve --home /var/lib/vhnode"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "StateDirectory": ["vhnode"],
        "StateDirectoryMode": ["0700"],
        "UMask": ["0077"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    }
    assert {k: d.get(k) for k in expected} == expected
    # Nothing but the home is writable: no ReadWritePaths beside the state directory.
    assert "ReadWritePaths" not in d
    elsewhere = directives(render_unit(UnitSettings(home=PurePosixPath("/srv/vhnode"))))
    assert elsewhere["ReadWritePaths"] == ["/srv/vhnode"]
    assert "StateDirectory" not in elsewhere


def test_the_shipped_unit_is_what_vhnode_service_unit_prints_by_default() -> None:
    text = render_unit(UnitSettings())
    assert SHIPPED.read_text() == text, "regenerate config/systemd/vhnode.service"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--home", "/home/vhnode"], "ProtectHome= hides /home"),
        (["--home", "var/lib/vhnode"], "use an absolute path"),
        (["--home", "/var/lib/vh node"], "use an absolute path"),
        (["--user", "root"], "not root"),
        (["--exec", "/opt/vhnode/bin/vhnode --debug"], "use an absolute path"),
    ],
)
def test_a_unit_the_sandbox_would_break_is_refused_in_one_line(args: list[str], says: str) -> None:
    done = vhnode("service", "unit", *args)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    assert says in lines[0], lines

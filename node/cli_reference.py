"""The CLI reference in docs/cli.md, generated from the click commands so it cannot drift.

Regenerate with ``python -m node.cli_reference > docs/cli.md``; tests/test_docs.py fails
when the committed file differs from what the code says.
"""

from __future__ import annotations

import click

from node.cli import main

HEADER = """# vhnode command reference

Generated from the code by `python -m node.cli_reference > docs/cli.md`; do not edit by
hand. Every command takes `--home DIR` (or `VHNODE_HOME`) unless it needs no node. Errors
print one line `error: <detail>` on standard error and exit 1 (2 for usage errors).
"""


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out: list[tuple[list[str], click.Command]] = []
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out += _walk(cmd.commands[name], [*path, name])
    else:
        out.append((path, cmd))
    return out


def render() -> str:
    parts = [HEADER]
    for path, cmd in _walk(main, ["vhnode"]):
        ctx = click.Context(
            cmd, info_name=" ".join(path), terminal_width=88, max_content_width=88
        )
        help_text = cmd.get_help(ctx)
        parts.append(f"\n## {' '.join(path)}\n\n```text\n{help_text}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)

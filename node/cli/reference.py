"""The CLI reference in docs/cli.md, generated from the click commands so it cannot drift.

Regenerate with ``python -m node.cli.reference > docs/cli.md``; tests/test_docs.py fails
when the committed file differs from what the code says.
"""

from __future__ import annotations

import click

from node.cli import main

HEADER = """# vhnode command reference

Generated from the code by `python -m node.cli.reference > docs/cli.md`; do not edit by
hand. Every command takes `--home DIR` (or `VHNODE_HOME`) unless it needs no node. Errors
print one line `error: <detail>` on standard error and exit 1 (2 for usage errors).
"""


def _walk(ctx: click.Context) -> list[click.Context]:
    """Leaf command contexts, each with its parents' settings (e.g. ``-h`` for help)."""
    cmd = ctx.command
    if not isinstance(cmd, click.Group):
        return [ctx]
    out: list[click.Context] = []
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        assert sub is not None, name
        out += _walk(click.Context(sub, info_name=name, parent=ctx))
    return out


def render() -> str:
    settings = {**main.context_settings, "terminal_width": 88, "max_content_width": 88}
    root = click.Context(main, info_name="vhnode", **settings)
    parts = [HEADER]
    for ctx in _walk(root):
        parts.append(f"\n## {ctx.command_path}\n\n```text\n{ctx.command.get_help(ctx)}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)

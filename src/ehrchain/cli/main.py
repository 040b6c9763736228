"""The ``ehrchain`` command: node operations, keys, and client commands.

This is the only place in ehrchain that exits the process: commands raise
typed errors and ``common.guarded`` turns them into one red line and an exit
code.
"""

from __future__ import annotations

import typer

from ehrchain import __version__
from ehrchain.cli.client_cmds import register_commands
from ehrchain.cli.common import console
from ehrchain.cli.keys_cmds import keys_app
from ehrchain.cli.network_cmds import register_network_commands
from ehrchain.cli.node_cmds import bench, demo, node_app, verify

__all__ = ["app", "main"]

app = typer.Typer(
    name="ehrchain",
    help="A permissioned blockchain for Electronic Health Records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(node_app, name="node")
app.add_typer(keys_app, name="keys")
app.command("demo")(demo)
app.command("verify")(verify)
app.command("bench")(bench)
register_commands(app)
register_network_commands(app, node_app)


@app.command("version")
def version() -> None:
    """Print the ehrchain version."""
    console.print(__version__)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

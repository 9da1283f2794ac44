"""`dlx` command line: the Typer app and the one place exit codes are decided.

Imports nothing heavy: every subcommand module here declares options and builds a frozen
config; JAX is imported only once a valid config is handed to `dlx.session.execute`.
Exit codes: 0 done, 1 runtime failure, 2 bad input, 130 interrupted (resumable).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from dlx import __version__
from dlx.config import REGISTRY
from dlx.errors import DlxError

try:  # Typer >= 0.16 vendors click; older releases use click itself.
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as _click_exc

# Each import registers its subcommand through @dlx.config.command.
from dlx.commands import cnn_demo  # noqa: F401,E402

for _mod in ("train_gan", "train_lstm", "compare_rnn", "grad_probe", "bench"):
    try:
        __import__(f"dlx.commands.{_mod}")
    except ModuleNotFoundError as e:  # a subcommand still being written
        if e.name != f"dlx.commands.{_mod}":
            raise

app = typer.Typer(
    name="dlx",
    help="Deep-learning experiments from the command line: train a real model in one command "
         "and see whether an idea holds. Data on stdout with --json; everything else on stderr.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's help formatter costs ~150 ms of imports
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"dlx {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
):
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(0)


for _name, (_callback, _help) in REGISTRY.items():
    app.command(_name, help=_help)(_callback)


def _fail(msg: str, code: int, kind: str, argv: list[str]) -> None:
    """One line on stderr; with --json also an `error` record on stdout."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[red]error:[/] {msg}", soft_wrap=True)
    if "--json" in argv:
        try:
            # Every record names its run and command; no run exists yet (null).
            command = next((a for a in argv if a in REGISTRY), None)
            print(json.dumps({"schema": 1, "event": "error", "run": None, "command": command, "kind": kind,
                              "message": msg, "exit_code": code}, separators=(",", ":")))   # as every record
        except OSError:   # no reader left, or a full disk: the line on stderr says it
            pass
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="dlx", standalone_mode=False)
    except _click_exc.NoArgsIsHelpError:
        sys.exit(0)
    except _click_exc.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "dlx"
        _fail(f"{where}: {e.format_message()}", 2, "usage", argv)
    except typer.Abort:
        sys.exit(130)
    except DlxError as e:  # raised before a run started (config validation)
        _fail(str(e), e.exit_code, e.kind, argv)


if __name__ == "__main__":  # pragma: no cover
    main()

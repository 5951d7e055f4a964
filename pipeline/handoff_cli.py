"""``pipeline export`` and ``pipeline push``: a finished build handed to another trainer or to the Hub.

Contract: thin commands over ``pipeline.export`` and ``pipeline.hub`` (imported when one runs); a folder that is
not a build, an unknown target or an ``--out`` that holds anything but an earlier export is one line on stderr
and exit 2; a failed upload (no token, no network, a refused repository) is one line and exit 1.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline import terminal

TARGET_HELP = "llama-factory, axolotl, trl, sharegpt or alpaca-json"


def export(build: Path = typer.Argument(..., help="A finished build folder (out/<name>, with its manifest.json)."),
           to: str = typer.Option(..., "--to", "-t", help=TARGET_HELP),
           out: Path | None = typer.Option(None, "--out", "-o", help="Default: <build>-<target> beside the build."),
           ) -> None:
    """Write the build's records (and the settings snippet) in the layout another trainer reads as is."""
    from pipeline import export as exporting

    try:
        files = exporting.export(build, to, out)
    except exporting.ExportError as err:
        terminal.error(str(err))
        raise typer.Exit(2) from None
    terminal.say("\n".join(str(path) for path in files))
    terminal.result(f"[green]exported[/] {build} for {to}: {files[0].parent}")


def push(build: Path = typer.Argument(..., help="A finished build folder (out/<name>, with its manifest.json)."),
         repo: str = typer.Argument(..., help="The Hub dataset repository, user/name."),
         private: bool = typer.Option(False, "--private", help="Create the repository private."),
         ) -> None:
    """Upload the build (its README.md is the dataset card) to a Hub dataset repository in one commit."""
    from pipeline import hub

    try:
        url = hub.push(build, repo, private)
    except hub.PushError as err:
        terminal.error(str(err))
        raise typer.Exit(2) from None
    except Exception as err:  # the Hub client's errors (HTTP, transport, token) share no base class but Exception
        terminal.error(f"push to {repo} failed: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}")
        raise typer.Exit(1) from None
    terminal.result(f"[green]pushed[/] {build} to {repo}: {url}")

"""The ``pipeline`` command: build a training set from a mix.yaml, check one without building, serve, audit.

Global options (``main``): ``--version``, ``--verbose`` / ``--quiet`` (pipeline/terminal.py), and shell completion
(``--install-completion``, ``--show-completion``; the training commands complete too, loaded on demand). Exit
status: 0 done, 1 a data or I/O problem (malformed JSON, a build that kept nothing, a full disk), 2 a problem with
the command or the spec found before any data is read (an unknown key, a tokenizer that cannot be loaded or cannot
render the template, an unsafe output), 130 stopped by Ctrl-C or SIGTERM (pipeline/stopping.py: nothing left
half-written).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

import pipeline
from pipeline import build_progress, handoff_cli, steps, stopping, summaries, terminal
from pipeline.io.tokenizer import TokenizerError

if TYPE_CHECKING:
    from pipeline.config import Mix

# The stages, polars and the readers are imported by the commands that use them, not here: `pipeline --version`
# and shell completion (which runs this module on every Tab) take ~0.25 s instead of ~0.9 s.

class _Commands(TyperGroup):
    """The commands; ``train``, ``generate`` and ``eval`` live with the trainer (trainer/cli.py), imported only when
    one of them runs or ``--help`` lists them, so a build never imports the trainer."""

    TRAINING = ("train", "generate", "eval")

    def list_commands(self, ctx: Any) -> list[str]:  # ctx: the Context of typer's own click
        return [*super().list_commands(ctx), *self.TRAINING]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in self.TRAINING:
            return super().get_command(ctx, name)
        from trainer import cli as training

        return typer.main.get_group(training.app).get_command(ctx, name)


app = typer.Typer(
    cls=_Commands,
    help=(
        "Curate instruction (SFT) data for LLaMA-family fine-tuning. Describe your sources and policies in a "
        "mix.yaml (see data/mix.yaml and the README), then run `pipeline build --mix mix.yaml`."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
console = terminal.console

MIX_OPTION = typer.Option(..., "--mix", "-m", help="The mix spec: sources, formats and stage policies.",
                          exists=False, dir_okay=False)
WORKERS_OPTION = typer.Option(None, "--workers", "-w", min=1,
                              help="Processes for the per-record stages; default: all cores for inputs > 32 MB.")


_error = terminal.error


def _load(mix_path: Path) -> Mix:
    from pipeline.config import ConfigError, load_mix

    try:
        return load_mix(mix_path)
    except ConfigError as err:
        _error(str(err))
        raise typer.Exit(2) from None


def _run_direct(mix: Mix, workers: int | None) -> Path:
    """The stages called in this process, each step shown as it ends; the tokenizer is loaded and checked first."""
    from pipeline import build as build_stage
    from pipeline import writer
    from pipeline.records import work_units

    with build_progress.display(len(work_units(mix))) as shown:
        shown.started("loading the tokenizer")
        tokenizer = build_stage.needed_tokenizer(mix.spec)
        result = build_stage.run(mix, progress=shown.unit, workers=workers, tokenizer=tokenizer,
                                 cache=build_stage.cache_folder(mix), stages=shown)
        shown.started(steps.WRITE)
        out = writer.write(result)
        rows = result.train.height + result.eval.height
        shown.finished(steps.WRITE, rows, rows)
    return out


@contextmanager
def _build_errors_exit(target: Path) -> Iterator[None]:
    """A build's expected errors as one line and an exit status: 2 for set-up (tokenizer, mixture guards, an
    unsafe or unwritable output), 1 for data (malformed JSON; a build that kept nothing, its summary first, the
    previous output untouched) and for any other OSError, named by its path (disk full, an unreadable input)."""
    from pipeline.io import output_folder
    from pipeline.io.json_stream import MalformedJSONError
    from pipeline.mixture import MixtureError

    try:
        yield
    except output_folder.EmptyBuildError as err:
        terminal.say(summaries.build_table(err.report))
        _error(str(err))
        raise typer.Exit(1) from None
    except (TokenizerError, MixtureError, output_folder.OutputError) as err:
        _error(str(err))
        raise typer.Exit(2) from None
    except MalformedJSONError as err:
        _error(str(err))
        raise typer.Exit(1) from None
    except OSError as err:
        _error(_os_error(err, target))
        raise typer.Exit(1) from None


def _os_error(err: OSError, target: Path) -> str:
    """One line naming the path; pyarrow's write errors name none, so a full disk names the output's folder."""
    if err.filename:
        return f"{err.filename}: {err.strerror or err}" + (f" ({err.filename2})" if err.filename2 else "")
    if err.errno == errno.ENOSPC or "No space left on device" in str(err):
        return f"{target.parent}: No space left on device while writing {target.name} (nothing was replaced)"
    return str(err)


RUNNER_OPTION = typer.Option("local", "--runner", "-r",
                             help="local: the Prefect flow, tasks on threads; dask: the flow on a Dask cluster "
                                  "(a local one of --workers processes, or --dask-address); direct: the stages "
                                  "called in this process, without Prefect (no task cache, no UI).")
DASK_OPTION = typer.Option(None, "--dask-address", help="tcp://host:8786 of a running Dask scheduler (--runner dask); "
                                                          "its workers keep their own memory limits.")
MEMORY_OPTION = typer.Option(None, "--worker-memory", metavar="SIZE",
                             help="--runner dask: each local worker's memory limit, e.g. 4GB; past 70% of it a worker "
                                  "spills task results to <state>/dask, past 95% it is restarted. Default: no limit.")
RUNNERS = ("local", "dask", "direct")


def _worker_memory(text: str | None, runner: str, dask_address: str | None) -> int | None:
    """``--worker-memory`` in bytes (None: not given); a bad value, or one no local Dask worker would get, exits 2."""
    if text is None:
        return None
    if runner != "dask" or dask_address:
        _error("--worker-memory sets the limit of the local Dask workers (--runner dask without --dask-address); "
               "a cluster at --dask-address has its own")
        raise typer.Exit(2)
    from flows import dask_runner

    try:
        return dask_runner.worker_memory(text)
    except ValueError as err:
        _error(f"--worker-memory {err}")
        raise typer.Exit(2) from None


def _run_flow(mix_path: Path, mix: Mix, runner: str, dask_address: str | None, workers: int | None,
              worker_memory: int | None, versioned: bool, verify: bool) -> Path:
    """The build flow (flows/build_flow.py), each step shown as it ends; returns the output folder. An output
    written from the same inputs, settings and code is returned before Prefect is even imported; otherwise the
    tokenizer is loaded and checked here before the flow reads anything (the flow loads it again)."""
    # the CLI prints a failed build's own error in one line; Prefect's console would add its log and traceback
    # (the server and its UI still get them; -v shows them here too)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows import keys

    unchanged = keys.current_output(mix, keys.build_keys(mix).build, versioned, verify)
    if unchanged is not None:
        terminal.say(f"unchanged: inputs, settings and code are those of {unchanged}; nothing to do")
        return unchanged
    from flows import build_flow as flows_build
    from flows import progress, server
    from pipeline import build as build_stage
    from pipeline.records import work_units

    flow = flows_build.with_runner(runner, dask_address, workers, worker_memory)
    with server.children_die_with_this_process(), build_progress.display(len(work_units(mix))) as shown:
        shown.started("loading the tokenizer")
        build_stage.needed_tokenizer(mix.spec)
        shown.started("starting Prefect")
        server.start_temporary_quietly()
        progress.hook, progress.stages = shown.unit, shown
        try:
            return Path(flow(str(mix_path.resolve()), versioned=versioned, verify=verify))
        finally:
            progress.hook, progress.stages = None, None


@app.command()
def build(mix_path: Path = MIX_OPTION, workers: int | None = WORKERS_OPTION, runner: str = RUNNER_OPTION,
          dask_address: str | None = DASK_OPTION, worker_memory: str | None = MEMORY_OPTION,
          versioned: bool = typer.Option(False, "--versioned", help="Write <out>/<name>/<UTC time>/ and point "
                                         "<out>/<name>/latest at it; the report says what changed."),
          verify: bool = typer.Option(False, "--verify", help="Before trusting an unchanged output, check its "
                                      "files' sha256 against the manifest (by default their sizes).")) -> None:
    """Build the dataset: read every source, run the stages, write <output.dir>/<name>/ atomically.

    The output folder is checked before any work: it must be absent, empty or an earlier build, and must not hold
    any input; one build at a time holds it."""
    if runner not in RUNNERS:
        _error(f"--runner {runner!r}: use one of {', '.join(RUNNERS)}")
        raise typer.Exit(2)
    if versioned and runner == "direct":
        _error("--versioned needs the flow (--runner local or dask)")
        raise typer.Exit(2)
    memory = _worker_memory(worker_memory, runner, dask_address)
    from pipeline.io import output_folder
    from schemas.report import BuildReport

    mix = _load(mix_path)
    with stopping.building(mix.out_dir), _build_errors_exit(mix.out_dir):
        output_folder.check(mix, versioned)
        with output_folder.hold(mix.out_dir):  # the flow holds it too (for serve); held here, its hold is free
            if runner == "direct":
                out = _run_direct(mix, workers)
            else:
                out = _run_flow(mix_path, mix, runner, dask_address, workers, memory, versioned, verify)
    report = BuildReport.model_validate_json((out / "report.json").read_bytes())
    summaries.print_build(report, out)


@app.command()
def serve(mix_path: Path = MIX_OPTION,
          cron: str = typer.Option(..., "--cron", help='When to build, e.g. "0 3 * * *" (03:00 every day).'),
          name: str | None = typer.Option(None, "--name", help="Deployment name; default: the mix's name."),
          runner: str = RUNNER_OPTION, dask_address: str | None = DASK_OPTION,
          workers: int | None = WORKERS_OPTION, worker_memory: str | None = MEMORY_OPTION) -> None:
    """Serve the build as a Prefect deployment on a schedule (needs a Prefect server: PREFECT_API_URL). Every run
    writes a new version folder plus a `latest` link; Ctrl-C stops serving, and the build it is running, at once
    (exit 130)."""
    if runner not in ("local", "dask"):
        _error("serve runs the flow: --runner local or dask")
        raise typer.Exit(2)
    memory = _worker_memory(worker_memory, runner, dask_address)
    mix = _load(mix_path)
    from flows import build_flow as flows_build
    from flows import server

    if not server.api_url():
        _error("serve needs a Prefect server, whose scheduler starts the runs (Prefect's temporary one has none): "
               "run `prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api")
        raise typer.Exit(2)
    flow = flows_build.with_runner(runner, dask_address, workers, memory)
    deployment = name or mix.spec.name

    def report() -> None:
        server.stop_serving(f"{flows_build.FLOW_NAME}/{deployment}", "stopped with pipeline serve (Ctrl-C or SIGTERM)")

    with stopping.serving(mix.out_dir, report) as interrupted, contextlib.suppress(KeyboardInterrupt):
        flow.serve(name=deployment, cron=cron,
                   parameters={"mix_path": str(mix_path.resolve()), "versioned": True},
                   print_starting_message=not terminal.quiet)
    if interrupted.signal is not None:
        raise typer.Exit(stopping.EXIT_STATUS)


@app.command()
def validate(mix_path: Path = MIX_OPTION, workers: int | None = WORKERS_OPTION) -> None:
    """Check the mix spec, that the tokenizer loads and renders the template, and read every source through the
    per-record stages (ingest, validation, normalization, language, quality, PII), without writing anything; dedup,
    the mixture and tokenization do not run."""
    from pipeline import build as build_stage
    from pipeline.records import work_units

    mix = _load(mix_path)
    with _build_errors_exit(mix.out_dir), build_progress.display(len(work_units(mix))) as shown:
        shown.started("loading the tokenizer")
        build_stage.needed_tokenizer(mix.spec)
        shards = build_stage.read(mix, progress=shown.unit, workers=workers, stages=shown)
    terminal.say(summaries.per_record_table(mix.spec.name, shards))
    terminal.result(f"[green]ok:[/] {mix_path} is valid and its {len(mix.sources)} source(s) are readable")


@app.command()
def estimate(model: str = typer.Option("7B", "--model", "-m", help="7B, 13B, 30B, 65B, a parameter count (6.7e9, "
                                       "20B) or a config.json (or a model folder)"),
             seq_len: int = typer.Option(1024, "--seq-len"), batch: int = typer.Option(1, "--batch"),
             lora_r: int = typer.Option(16, "--lora-r"),
             targets: str = typer.Option("q_proj,k_proj,v_proj,o_proj", "--targets",
                                         help="comma-separated, or all-linear"),
             checkpointing: bool = typer.Option(True, "--checkpointing/--no-checkpointing")) -> None:
    """GPU memory to fine-tune a LLaMA-shaped model: full, LoRA and QLoRA, part by part (no torch needed)."""
    from pipeline import memory
    from schemas.mix import TrainSpec

    shape = memory.model_shape(model)
    table = Table(title=f"GPU memory (GB): {model}, {seq_len} tokens x batch {batch}, LoRA r={lora_r} on {targets}")
    for column in ("method", "parameters", "trained", "weights", "gradients", "optimizer", "activations",
                   "overhead", "total"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method in ("full", "lora", "qlora"):
        settings = TrainSpec(method=method, micro_batch_size=batch, lora_r=lora_r, gradient_checkpointing=checkpointing,
                             target_modules="all-linear" if targets == "all-linear" else targets.split(","))
        parts = memory.estimate(shape, settings, seq_len)
        values = parts.as_dict()
        table.add_row(method, f"{parts.parameters / 1e9:.2f}B", f"{parts.trainable / 1e6:,.1f}M",
                      *(f"{values[k]:,.1f}" for k in ("weights", "gradients", "optimizer", "activations", "overhead",
                                                      "total")))
    console.print(table)
    terminal.say("assumptions: pipeline/memory.py (AdamW in mixed precision, NF4 + double quantization, "
                 "activations after Korthikanti et al., 20% overhead)")


class _AuditProgress:
    """`pipeline audit`'s terminal progress: a bar over the files while reading, then the stage running."""

    def __init__(self, bar: Progress, files: int) -> None:
        self.bar, self.records = bar, 0
        self.task = bar.add_task("reading", total=files)

    def read(self, file: str, items: int, done: bool) -> None:
        self.records += items
        self.bar.update(self.task, advance=1 if done else 0,
                        description=f"{Path(file).name}: {self.records:,} items")

    def stage(self, name: str) -> None:
        self.bar.update(self.task, description=f"{name} ({self.records:,} items)")


@app.command()
def audit(paths: list[str] = typer.Argument(..., help="Files, globs (quoted) or folders, in any format a source "
                                             "can have; each file is audited on its own and against the others."),
          formats: list[str] = typer.Option(["html", "md", "json"], "--format", "-f",
                                            help="html, md or json; repeat for several (default: all three)."),
          out: Path | None = typer.Option(None, "--out", "-o", help="Folder for audit.html / .md / .json; "
                                          "default: out/audit/<name of the first path>."),
          tokenizer: str | None = typer.Option(None, "--tokenizer", help="LLaMA-2 tokenizer (Hub id or folder) for "
                                               "token lengths; default: the build's "
                                               "(INSTRUCT_PIPELINE_TOKENIZER wins)."),
          tokens: bool = typer.Option(True, "--tokens/--no-tokens", help="Measure lengths in LLaMA-2 tokens."),
          columns: list[str] = typer.Option([], "--columns", "-c", help="FIELD=KEY: read the field from that key, "
                                            "e.g. output=response (repeat for several; as a source's columns:).")
          ) -> None:
    """Audit a dataset without building: schema problems, empty and placeholder fields, duplicates, languages,
    lengths in characters and tokens, quality and PII hits, diversity, and the top problems with example ids."""
    import re

    from pipeline import audit as audit_stage
    from pipeline.config import ConfigError
    from pipeline.io.tokenizer import load_tokenizer
    from schemas.mix import TokenizeSpec

    unknown = sorted(set(formats) - set(audit_stage.FORMATS))
    if unknown:
        _error(f"--format {', '.join(unknown)}: choose from {', '.join(audit_stage.FORMATS)}")
        raise typer.Exit(2)
    try:
        fields = audit_stage.parse_columns(columns)
        sources = len(audit_stage.resolve(paths, Path.cwd(), fields))
        loaded = load_tokenizer(tokenizer or TokenizeSpec().tokenizer) if tokens else None
    except (TokenizerError, ConfigError) as err:
        _error(f"{err}{' (or pass --no-tokens)' if isinstance(err, TokenizerError) else ''}")
        raise typer.Exit(2) from None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("files"), TimeElapsedColumn(), console=console, transient=True,
                  disable=terminal.quiet or not console.is_terminal) as bar:
        report = audit_stage.run(paths, loaded, _AuditProgress(bar, sources), columns=fields)
    folder = out or Path("out") / "audit" / (re.sub(r"[^A-Za-z0-9_.\-]+", "_", Path(paths[0]).name).strip("_.")
                                             or "dataset")
    written = audit_stage.write(report, folder, formats)
    for summary in summaries.audit_tables(report):
        terminal.say(summary)
    terminal.result(f"wrote {', '.join(str(p) for p in written)}")


app.command("export")(handoff_cli.export)
app.command("push")(handoff_cli.push)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pipeline {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def main(ctx: typer.Context,
         verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each stage's progress (with Prefect's "
                                      "INFO lines)."),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the final one-line result: no "
                                    "progress, tables, notes or warnings."),
         version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    if verbose and quiet:
        _error("--verbose and --quiet: choose one")
        raise typer.Exit(2)
    ctx.call_on_close(terminal.configure(verbose, quiet))


if __name__ == "__main__":
    app()

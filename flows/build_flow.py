"""The build as a Prefect flow: each stage of pipeline.build is a task; no stage logic lives here.

Shape: ``shard`` maps over the work units (a file, or a whole dataset: ingest, validate, normalize, language,
quality, PII) and runs them in parallel on the task runner (threads by default, Dask workers with
``--runner dask``); the global stages of ``plan.STAGES`` reduce in order (dedup -> decontaminate -> split ->
mixture -> tokenize), one task each; then ``report`` (ledger check and report) and ``write``. On Dask, the dedup
task runs partition by partition on the workers where the shards are read (flows/dask_runner.py): its records are
never united in one frame, and its output is the one the union would give; decontamination runs partition by
partition too, and the tokenize task runs each shard of tokenized/ as a task of its own, whose worker writes
its file.

Data: a task writes its output's frames to a stage folder and returns a small handle (flows/stage_store.py), so
neither Prefect's futures nor its result storage hold a million records once per stage; the next task reads
what it needs from the folder.

Caching: every task but report and write is cached by the key flows/keys.py computes from the content of its
inputs and its settings: its output stays in ``<state>/stages/<build name>/<key>/`` and its handle is persisted
under $PREFECT_HOME/storage, and in the folder itself: a task whose folder is gone is recomputed (its cache
refreshed), and one run again over its complete folder (Dask recomputing a result lost with a worker) returns
the handle stored there (``stage_store.finished``). Re-running an
unchanged build stops after comparing one key with the output's manifest; adding a file re-runs that file's
shard and the global stages; a crashed build resumes with the shards it finished. After a build, the stage
folders its keys no longer name are removed. Shards of Hub datasets retry with backoff.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows import dask_worker, progress, stage_store
from flows.keys import BuildKeys, build_keys, current_output
from flows.stage_store import StageHandle
from pipeline import build, dedup, plan, versions, writer
from pipeline.config import Mix, load_mix
from pipeline.io import output_folder
from pipeline.records import Shard, WorkUnit, shard_unit, work_units
from pipeline.report import markdown
from pipeline.steps import READ, REPORT, SILENT, WRITE

log = logging.getLogger(__name__)
FLOW_NAME = "instruct-pipeline-build"
HUB_RETRIES = 3
LOST_WORKER_RETRIES = 2  # a stage whose Dask worker died under it runs again from its inputs, this often at most



def _given_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    return parameters["key"]


def _cached(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    return task(name=name, cache_key_fn=_given_key, persist_result=True, **options)


def _lost_with_a_worker(task: Any, task_run: Any, state: Any) -> bool:
    """Whether a stage failed because results it needed went with a Dask worker that died under it (distributed's
    ``FutureCancelledError``: the partitioned stages release their intermediate results as they go, so a lost one
    cannot be recomputed inside the stage). A task that kills its worker every time (``KilledWorker``) is not
    retried: it would again."""
    try:
        state.result()
    except Exception as err:  # the stage's own exception
        return type(err).__name__ == "FutureCancelledError" and type(err).__module__.startswith("distributed")
    return False


@_cached("shard")
def shard_task(unit: WorkUnit, key: str | None, folder: Path) -> StageHandle:
    return stage_store.finished(folder) or stage_store.put(shard_unit(unit), folder)


def _shards(handles: list[StageHandle], without: tuple[str, ...] = ()) -> list[Shard]:
    return [stage_store.get(handle, without) for handle in handles]


@_cached("stage", retries=LOST_WORKER_RETRIES, retry_condition_fn=_lost_with_a_worker)
def stage_task(name: str, shards: list[StageHandle], previous: StageHandle | None,
               earlier: dict[str, StageHandle], mix: Mix, tokenizer: Any, key: str | None, folder: Path) -> StageHandle:
    """The global stage ``name`` of ``plan.STAGES`` over the records the stage before kept (the first stage: the
    union of the shards), with the outputs it reads from the ``earlier`` stages."""
    if (done := stage_store.finished(folder)) is not None:  # run again after its result went with a Dask worker
        return done
    stage = plan.stage(name)
    with stage_store.scratch(folder) as scratch:  # the files the stage writes move into its folder with its output
        if previous is None and _partitioned(stage, mix):
            from flows import dask_runner

            outcome, written = dask_runner.partitioned_dedup(shards, mix, scratch)
            return stage_store.put(outcome, folder, written)
        records = stage_store.get(previous).kept if previous is not None else build.union(_shards(shards))
        context = plan.Context(mix, tokenizer, stage_store.stage_inputs(earlier, stage), scratch)
        if previous is not None and _on_dask_worker():
            from flows import dask_runner

            outcome, written = dask_runner.run_stage(stage, records, context, previous, earlier)
            return stage_store.put(outcome, folder, written)
        return stage_store.put(plan.run_stage(stage, records, context), folder)


def _partitioned(stage: plan.Stage, mix: Mix) -> bool:
    """Whether ``stage`` is the dedup of records that live on a Dask cluster (this task runs on one of its
    workers): then it runs partition by partition where the shards are (flows/dask_runner.py)."""
    return stage.name == dedup.STAGE and (mix.spec.dedup.exact or mix.spec.dedup.near) and _on_dask_worker()


def _on_dask_worker() -> bool:
    return dask_worker() is not None


@task(name="report", cache_policy=NO_CACHE)
def report_task(mix: Mix, shards: list[StageHandle], stages: dict[str, StageHandle], folder: Path) -> StageHandle:
    """What ``build.finish`` hands to ``assemble``: every stage's outcome without the records it passed on (the
    last one's: train)."""
    last = plan.STAGES[-1].name
    outcomes = {name: stage_store.get(handle, without=() if name == last else ("kept",))
                for name, handle in stages.items()}
    result = build.assemble(mix, _shards(shards, without=("kept",)), outcomes)
    with stage_store.scratch(folder) as scratch:  # train and the dedup index: earlier stages' files, linked
        written = {"train": stage_store.linked(stages[last], "kept", scratch)}
        if result.signatures is not None:
            written["signatures"] = stage_store.linked(stages[dedup.STAGE], "outputs/signatures", scratch)
        return stage_store.put(result, folder, written)


@task(name="write", cache_policy=NO_CACHE)
def write_task(report: StageHandle, key: str | None, versioned: bool) -> str:
    """The output folder (or a new version of it), and the report as a Markdown artifact on the server. On Dask
    with ``output.shard_rows``, each file of train and eval is a task of its own (``dask_runner.split_writer``)."""
    result: build.BuildResult = stage_store.get(report)
    split_writer = None
    if result.mix.spec.output.shard_rows and _on_dask_worker():  # the files of train and eval: worker tasks
        from flows import dask_runner

        split_writer = dask_runner.split_writer(report)
    if versioned:
        root = result.mix.out_dir
        result.report.changes = versions.changes(versions.latest(root), result.train, result.eval)
        target = writer.write(result, versions.new_version(root), build_key=key, split_writer=split_writer)
        versions.point_latest(root, target)
    else:
        target = writer.write(result, build_key=key, split_writer=split_writer)
    create_markdown_artifact(markdown=markdown.render(result.report), key=_artifact_key(result.mix.spec.name),
                             description=f"build report: {target}")
    stage_store.remove(report)
    return str(target)


def _shard_options(unit: WorkUnit) -> dict[str, Any]:
    if unit.source.kind == "hub":
        return {"retries": HUB_RETRIES, "retry_delay_seconds": exponential_backoff(backoff_factor=10)}
    return {}


@flow(name=FLOW_NAME, persist_result=False, validate_parameters=False)
def build_flow(mix_path: str, versioned: bool = False, verify: bool = False) -> str:
    """Build ``mix_path`` (a mix.yaml) into its output folder; ``versioned`` writes <out>/<name>/<UTC time>/ and
    points <out>/<name>/latest at it, with what changed since the previous version in its report. ``verify``
    checks an unchanged output's files by their sha256 (else by their sizes) before trusting it.

    The output folder and the build's stage folders are held (``output_folder.hold``) for the whole run, so two
    builds of one name never write or prune under each other."""
    mix = load_mix(Path(mix_path))
    output_folder.check(mix, versioned)
    root = stage_store.state_root()
    with output_folder.hold(mix.out_dir), output_folder.hold(root / mix.spec.name):
        return _build(mix, versioned, verify, root)


def _build(mix: Mix, versioned: bool, verify: bool, root: Path) -> str:
    keys: BuildKeys = build_keys(mix)
    unchanged = current_output(mix, keys.build, versioned, verify)
    if unchanged is not None:
        log.warning("%s: inputs, settings and code unchanged since %s; nothing to do", mix.spec.name, unchanged)
        return str(unchanged)
    units = work_units(mix)
    name = mix.spec.name

    def cached(stage: Any, key: str | None) -> tuple[Any, Path]:
        """The task, told to recompute when the output its cached handle points at is gone, and its folder."""
        folder = stage_store.folder_for(root, name, key)
        return stage.with_options(refresh_cache=not stage_store.complete(folder)), folder

    futures = []
    for unit, key in zip(units, keys.units, strict=True):
        shard, folder = cached(shard_task, key)
        futures.append(shard.with_options(**_shard_options(unit)).submit(unit, key, folder))
    steps = progress.stages or SILENT
    steps.started(READ)
    tokenizer = build.needed_tokenizer(mix.spec)  # loads while the shards run; they are cached if it fails
    source_of = {id(future): unit.source.spec.name for future, unit in zip(futures, units, strict=True)}
    for future in as_completed(futures):  # only states come here; the data is in the stage folders
        _raise_failure(future)  # the shard's own error (a malformed file names its line)
        if progress.hook is not None:
            progress.hook(source_of[id(future)], future.result().skeleton.n_input, True)
    counted = _Counts(steps is not SILENT)
    inputs, records = counted.shards(futures)
    steps.finished(READ, inputs, records)
    stages: dict[str, Any] = {}
    previous = None
    for stage in plan.STAGES:
        task, folder = cached(stage_task.with_options(name=stage.name), keys.stages[stage.name])
        previous = task.submit(stage.name, futures if previous is None else [], previous, dict(stages), mix,
                               tokenizer, keys.stages[stage.name], folder)
        stages[stage.name] = previous
    report_folder = stage_store.folder_for(root, name, None)
    result: Any = report_task.submit(mix, futures, stages, report_folder)  # a future, which Prefect resolves
    written = write_task.submit(result, keys.build, versioned)
    for stage_name, future in stages.items():  # in order: a failed stage's own error; later ones: "upstream failed"
        steps.started(stage_name)
        _raise_failure(future)
        kept = counted.rows(future, "kept")
        steps.finished(stage_name, records, kept)
        records = kept
    steps.started(REPORT)
    _raise_failure(result)
    written_rows = counted.rows(result, "train") + counted.rows(result, "eval")
    steps.finished(REPORT, inputs, written_rows)
    steps.started(WRITE)
    _raise_failure(written)
    steps.finished(WRITE, written_rows, written_rows)
    target = written.result()
    stage_store.prune(root, name, [*keys.units, *keys.stages.values()])
    return target


class _Counts:
    """Rows of the stage folders' frames for the progress display, read from the Arrow files' metadata, and only
    when a display is listening (0 otherwise)."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted

    def rows(self, future: Any, field: str) -> int:
        if not self.wanted:
            return 0
        return stage_store.rows(future.result(), field)

    def shards(self, futures: list[Any]) -> tuple[int, int]:
        """Records read and records kept by the per-record stages."""
        if not self.wanted:
            return 0, 0
        return (sum(future.result().skeleton.n_input for future in futures),
                sum(self.rows(future, "kept") for future in futures))


def _raise_failure(future: Any) -> None:
    future.wait()
    if future.state.is_failed() or future.state.is_crashed():
        future.result()


def _artifact_key(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return "build-report-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def with_runner(runner: str, dask_address: str | None = None, workers: int | None = None,
                worker_memory: int | None = None) -> Any:
    """``build_flow`` on the chosen task runner: ``local`` (threads) or ``dask`` (a LocalCluster of ``workers``
    processes of ``worker_memory`` bytes each, None: uncapped; or the cluster at ``dask_address``, with its own
    limits: flows/dask_runner.py)."""
    if runner == "local":  # one thread per core (Prefect's default is unbounded: every shard in memory at once)
        threads: TaskRunner[Any] = ThreadPoolTaskRunner(max_workers=workers or os.cpu_count())
        return build_flow.with_options(task_runner=threads)
    if runner != "dask":
        raise ValueError(f"unknown runner {runner!r}; use local or dask")
    from flows import dask_runner

    return build_flow.with_options(task_runner=dask_runner.task_runner(dask_address, workers, worker_memory))

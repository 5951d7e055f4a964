"""The build as a Prefect flow: each stage of pipeline.build is a task; no stage logic lives here.

Shape: ``shard`` maps over the work units (a file, or a whole dataset: ingest, validate, normalize, language,
quality, PII) and runs them in parallel on the task runner (threads by default, Dask workers with
``--runner dask``); the global stages reduce in order: dedup -> decontaminate -> split -> mixture -> tokenize;
then ``report`` (ledger check and report) and ``write``.

Caching: every task but report and write is cached by the key flows/keys.py computes from the content of its
inputs and its settings, and its result persisted under $PREFECT_HOME/storage. Re-running an unchanged build
stops after comparing one key with the output's manifest; adding a file re-runs that file's shard and the
global stages; a crashed build resumes with the shards it finished. Shards of Hub datasets retry with backoff.
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

from flows import progress
from flows.keys import BuildKeys, build_keys, current_output
from pipeline import build, report_markdown, versions
from pipeline.config import Mix, load_mix
from schemas.mix import MixSpec

log = logging.getLogger(__name__)
FLOW_NAME = "instruct-pipeline-build"
HUB_RETRIES = 3



def _given_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    return parameters["key"]


def _cached(name: str) -> Callable[[Callable[..., Any]], Any]:
    return task(name=name, cache_key_fn=_given_key, persist_result=True)


@_cached("shard")
def shard_task(unit: build.WorkUnit, key: str | None) -> build.Shard:
    return build.shard_unit(unit)


@_cached("dedup")
def dedup_task(shards: list[build.Shard], mix: Mix, key: str | None) -> build.Deduplicated:
    return build.dedup_stage(build.union(shards), mix)


@_cached("decontaminate")
def decontaminate_task(deduped: build.Deduplicated, mix: Mix, key: str | None) -> tuple[Any, Any]:
    return build.decontaminate_stage(deduped.kept, mix)


@_cached("split")
def split_task(clean: tuple[Any, Any], spec: MixSpec, key: str | None) -> tuple[Any, Any]:
    return build.split_stage(clean[0], spec)


@_cached("mixture")
def mixture_task(split: tuple[Any, Any], mix: Mix, tokenizer: Any, key: str | None) -> build.Mixed:
    return build.mixture_stage(split[0], mix, tokenizer)


@_cached("tokenize")
def tokenize_task(mixed: build.Mixed, split: tuple[Any, Any], tokenizer: Any, spec: MixSpec,
                  key: str | None) -> build.Tokenized:
    return build.tokenize_stage(mixed.train, split[1], tokenizer, spec)


@task(name="report", cache_policy=NO_CACHE)
def report_task(mix: Mix, shards: list[build.Shard], deduped: build.Deduplicated, clean: tuple[Any, Any],
                mixed: build.Mixed, tokenized: build.Tokenized) -> build.BuildResult:
    return build.assemble(mix, shards, deduped, clean[1], mixed, tokenized)


@task(name="write", cache_policy=NO_CACHE)
def write_task(result: build.BuildResult, key: str | None, versioned: bool) -> str:
    """The output folder (or a new version of it), and the report as a Markdown artifact on the server."""
    if versioned:
        root = result.mix.out_dir
        result.report.changes = versions.changes(versions.latest(root), result.train, result.eval)
        target = build.write(result, versions.new_version(root), build_key=key)
        versions.point_latest(root, target)
    else:
        target = build.write(result, build_key=key)
    create_markdown_artifact(markdown=report_markdown.render(result.report), key=_artifact_key(result.mix.spec.name),
                             description=f"build report: {target}")
    return str(target)


def _shard_options(unit: build.WorkUnit) -> dict[str, Any]:
    if unit.source.kind == "hub":
        return {"retries": HUB_RETRIES, "retry_delay_seconds": exponential_backoff(backoff_factor=10)}
    return {}


@flow(name=FLOW_NAME, persist_result=False, validate_parameters=False)
def build_flow(mix_path: str, versioned: bool = False) -> str:
    """Build ``mix_path`` (a mix.yaml) into its output folder; ``versioned`` writes <out>/<name>/<UTC time>/ and
    points <out>/<name>/latest at it, with what changed since the previous version in its report."""
    mix = load_mix(Path(mix_path))
    keys: BuildKeys = build_keys(mix)
    unchanged = current_output(mix, keys.build, versioned)
    if unchanged is not None:
        log.warning("%s: inputs, settings and code unchanged since %s; nothing to do", mix.spec.name, unchanged)
        return str(unchanged)
    units = build.work_units(mix)
    futures = [shard_task.with_options(**_shard_options(unit)).submit(unit, key)
               for unit, key in zip(units, keys.units, strict=True)]
    tokenizer = build.needed_tokenizer(mix.spec)  # loads while the shards run; they are cached if it fails
    source_of = {id(future): unit.source.spec.name for future, unit in zip(futures, units, strict=True)}
    for future in as_completed(futures):  # the data stays where it is (a Dask worker): only states come here
        future.wait()  # sets the final state on the future (without it, .state asks the server, which may lag)
        if not future.state.is_completed():
            future.result()  # raises the shard's own error (a malformed file names its line)
        if progress.hook is not None:
            progress.hook(source_of[id(future)], 0, True)
    deduped = dedup_task.submit(futures, mix, keys.dedup)
    clean = decontaminate_task.submit(deduped, mix, keys.decontaminate)
    split = split_task.submit(clean, mix.spec, keys.split)
    mixed = mixture_task.submit(split, mix, tokenizer, keys.mixture)
    tokenized = tokenize_task.submit(mixed, split, tokenizer, mix.spec, keys.tokenize)
    result = report_task.submit(mix, futures, deduped, clean, mixed, tokenized)
    return write_task.submit(result, keys.build, versioned).result()


def _artifact_key(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return "build-report-" + "".join(c if c.isalnum() else "-" for c in name.lower())


def with_runner(runner: str, dask_address: str | None = None, workers: int | None = None) -> Any:
    """``build_flow`` on the chosen task runner: ``local`` (threads) or ``dask`` (a LocalCluster of ``workers``
    processes, or the cluster at ``dask_address``)."""
    if runner == "local":  # one thread per core (Prefect's default is unbounded: every shard in memory at once)
        return build_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers or os.cpu_count()))
    if runner != "dask":
        raise ValueError(f"unknown runner {runner!r}; use local or dask")
    from prefect_dask import DaskTaskRunner

    task_runner: TaskRunner[Any] = DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner(
        # memory_limit 0: no per-worker cap; Dask's default (RAM / workers) pauses the worker that tokenizes a
        # large build at 80% of its half, with nothing to spill to free it
        cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1, "processes": True,
                        "dashboard_address": None, "memory_limit": 0})
    return build_flow.with_options(task_runner=task_runner)

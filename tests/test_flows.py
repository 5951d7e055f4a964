"""The build as a Prefect flow, on the session's real Prefect server: same output as the direct build, cached
re-runs, resuming after a failure, the Dask runner, and a served deployment triggered through the API."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import polars as pl
import pytest
import yaml

from pipeline import build, writer
from pipeline.config import load_mix
from pipeline.io import split_files
from schemas.report import BuildReport
from tests.conftest import ROOT, write_jsonl

pytestmark = pytest.mark.usefixtures("prefect_api")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _flow_run(mix: Path, **options: Any) -> tuple[str, UUID]:
    from flows.build_flow import build_flow

    state = build_flow(str(mix), return_state=True, **options)
    assert state.is_completed(), state
    return state.result(), state.state_details.flow_run_id


def _task_states(flow_run_id: UUID, expected: int) -> list[tuple[str, str]]:
    """(task name, final state name) of a flow run's task runs, sorted; waits for the server to have all."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        states = sorted((run.name.rsplit("-", 1)[0], run.state_name or "") for run in runs)
        final = [s for s in states if s[1] in ("Completed", "Cached", "Failed")]
        if len(final) >= expected or time.monotonic() > deadline:
            return final
        time.sleep(0.5)


def _parts(tmp_path: Path, files: dict[str, int]) -> None:
    for name, n in files.items():
        write_jsonl(tmp_path / "parts" / name, [{"instruction": f"Explain fact {name} number {k} about {k * 17}.",
                                                  "input": "", "output": f"Fact {k} of {name}: {k * 31} is odd."}
                                                 for k in range(n)])


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    return tmp_path / "data" / "mix.yaml"


def test_flow_writes_what_the_direct_build_writes(demo: Path) -> None:
    direct = _hashes(writer.write(build.run(load_mix(demo))))
    out, _ = _flow_run(demo)
    flowed = _hashes(Path(out))
    assert flowed.keys() == direct.keys()
    assert {k: v for k, v in flowed.items() if k != "manifest.json"} == {k: v for k, v in direct.items()
                                                                        if k != "manifest.json"}
    manifest = orjson.loads((Path(out) / "manifest.json").read_bytes())
    assert manifest["build_key"] and len(manifest["build_key"]) == 64
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:  # the report, as a Markdown artifact on the server
        key = ArtifactFilterKey(any_=["build-report-demo"])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=key))
    assert artifacts and artifacts[0].type == "markdown" and artifacts[0].data.startswith("# Build report: demo")


def test_unchanged_rerun_stops_early_and_a_new_file_reprocesses_only_itself(tmp_path: Path, write_mix) -> None:
    _parts(tmp_path, {"a.jsonl": 30, "b.jsonl": 30})
    mix = write_mix({"name": "inc", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    out, first = _flow_run(mix)
    assert _task_states(first, 9) == sorted([("shard", "Completed")] * 2 + [
        (t, "Completed") for t in ("dedup", "decontaminate", "split", "mixture", "tokenize", "report", "write")])
    written = (Path(out) / "manifest.json").stat().st_mtime_ns

    again, second = _flow_run(mix)
    assert again == out and (Path(out) / "manifest.json").stat().st_mtime_ns == written
    time.sleep(2)  # let the server record task runs, if the flow had made any
    assert _task_states(second, 0) == []

    _parts(tmp_path, {"c.jsonl": 20})
    out, third = _flow_run(mix)
    states = _task_states(third, 10)
    assert [s for s in states if s[0] == "shard"] == [("shard", "Cached")] * 2 + [("shard", "Completed")]
    assert ("dedup", "Completed") in states
    assert BuildReport.model_validate_json((Path(out) / "report.json").read_bytes()).totals["input"] == 80


def test_stage_outputs_live_in_files_and_a_lost_one_is_recomputed(tmp_path: Path, write_mix) -> None:
    """Tasks pass handles, not frames: Prefect persists a few KB per task, the records are in the stage folders.
    A stage folder that is gone makes its task compute again instead of failing on a dangling cached handle;
    folders the current keys no longer name are removed after the build."""
    from flows import stage_store
    from flows.keys import build_keys

    _parts(tmp_path, {"a.jsonl": 30, "b.jsonl": 30})
    mix = write_mix({"name": "lost", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    _flow_run(mix)
    keys = build_keys(load_mix(mix))
    folders = stage_store.state_root() / "lost"
    expected = {*keys.units, *keys.stages.values()}
    assert {p.name for p in folders.iterdir()} == expected  # the report's own folder went with the write
    shard = folders / keys.units[0]
    assert stage_store.complete(shard)
    assert sorted(p.suffix for p in shard.iterdir()) == ["", ".arrow", ".arrow", ".pickle"]  # done, frames, handle

    shutil.rmtree(shard)
    _parts(tmp_path, {"c.jsonl": 20})
    out, run = _flow_run(mix)
    shards = [s for s in _task_states(run, 10) if s[0] == "shard"]
    assert shards == [("shard", "Cached"), ("shard", "Completed"), ("shard", "Completed")]  # b cached; a, c computed
    assert BuildReport.model_validate_json((Path(out) / "report.json").read_bytes()).totals["input"] == 80
    now = build_keys(load_mix(mix))
    assert {p.name for p in folders.iterdir()} == {*now.units, *now.stages.values()}
    assert keys.stages["dedup"] not in {p.name for p in folders.iterdir()}  # the old build's stages were pruned


def test_a_failed_build_resumes_from_the_shards_it_finished(tmp_path: Path, write_mix) -> None:
    from pipeline.io.json_stream import MalformedJSONError

    _parts(tmp_path, {"a.jsonl": 10, "b.jsonl": 10})
    (tmp_path / "parts" / "c.jsonl").write_text('{"instruction": "broken", "output": \n', encoding="utf-8")
    mix = write_mix({"name": "crash", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    from flows.build_flow import build_flow

    with pytest.raises(MalformedJSONError, match="c.jsonl"):
        build_flow(str(mix))
    _parts(tmp_path, {"c.jsonl": 10})
    _, run = _flow_run(mix)
    shards = [s for s in _task_states(run, 10) if s[0] == "shard"]
    assert shards == [("shard", "Cached")] * 2 + [("shard", "Completed")]


def _fresh_stages(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Stage folders of their own: every task of the next build computes (the flow refreshes a task's cache when
    its folder is missing; PREFECT_TASKS_REFRESH_CACHE does not, since the flow sets refresh_cache=False on
    tasks whose folder is complete)."""
    monkeypatch.setenv("INSTRUCT_PIPELINE_STAGES", str(folder))


def test_dask_runner_writes_the_same_bytes_as_the_local_runner(tmp_path: Path, demo: Path, monkeypatch) -> None:
    from flows.build_flow import with_runner

    local = _hashes(Path(with_runner("local")(str(demo))))
    other = tmp_path / "again"
    shutil.copytree(demo.parent, other)
    _fresh_stages(monkeypatch, tmp_path / "dask-stages")  # computed by the workers, not cached
    out = with_runner("dask", workers=2)(str(other / "mix.yaml"))
    assert _hashes(Path(out)) == local


def test_on_dask_the_global_stages_run_partition_by_partition_on_the_workers(tmp_path: Path, demo: Path,
                                                                             monkeypatch) -> None:
    """On a cluster of its own (``--dask-address``; 1-thread worker processes, so a task's worker client must free
    its thread), the dedup task reads each shard on a worker by a task of its own and dedups them as partitions
    (flows/partitioned_dedup.py: one ``prepare`` per shard, band buckets, pair buckets): its records are never one
    frame, and each shard's worker writes the records it keeps into the stage folder; decontamination (against
    near copies of ten demo prompts) runs on a partition per worker, which writes what it keeps; the split and the
    mixture choose rows from a few columns, and the workers write the rows they chose; the tokenize task
    runs one task per shard of tokenized/ (``tokenize.shard_records``: 60 here), on both workers, and each file
    of train and eval (``output.shard_rows``: 100 here) is written by a task of its own. The scheduler's own
    record of the tasks shows it; the output is the direct build's, byte for byte."""
    import distributed
    from distributed.diagnostics.plugin import SchedulerPlugin
    from distributed.utils import key_split

    from flows.build_flow import with_runner
    from pipeline.records import work_units

    class Finished(SchedulerPlugin):
        def __init__(self) -> None:
            self.tasks: list[tuple[str, str]] = []  # (task name, worker), as each task's result arrives

        def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if finish == "memory" and "worker" in kwargs:
                self.tasks.append((key_split(key), kwargs["worker"]))

    spec = yaml.safe_load(demo.read_text(encoding="utf-8"))
    spec["tokenize"]["shard_records"] = 60
    general = orjson.loads((demo.parent / "general" / "alpaca_general.json").read_bytes())
    eval_rows = [{"instruction": r["instruction"] + " please", "input": r["input"]} for r in general[:40:4]]
    (demo.parent / "evals.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in eval_rows))
    spec["decontaminate"] = {"against": ["evals.jsonl"]}
    spec.setdefault("filters", {})["min_tokens"] = 90  # tokenize rejects short records: quarantined on Dask too
    spec.setdefault("output", {})["shard_rows"] = 100  # train and eval as Hub-style shards, a task each
    demo.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    direct = _hashes(writer.write(build.run(load_mix(demo))))
    other = tmp_path / "again"
    shutil.copytree(demo.parent, other)
    finished = Finished()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cluster.scheduler.add_plugin(finished)
        _fresh_stages(monkeypatch, tmp_path / "stages")
        out = with_runner("dask", dask_address=cluster.scheduler_address)(str(other / "mix.yaml"))
    names = [name for name, _ in finished.tasks]
    parts = len(work_units(load_mix(demo)))
    # dedup: a prepare per shard; decontamination's near search: per partition and per chunk of the eval set
    assert parts == 3 and names.count("shard_records") == parts, finished.tasks
    assert names.count("prepare") == parts + 2 + 2
    assert names.count("bucket_pairs") == names.count("first_round") == 2 + 2  # a band / pair bucket per worker
    assert len({worker for name, worker in finished.tasks if name == "bucket_pairs"}) == 2  # a bucket on each
    # each shard's worker wrote the records it kept into the stage folder; none came to the dedup task
    assert names.count("write_kept") == parts and "kept" not in names
    # a part on each worker, which writes the records it keeps; read twice (for the lookups, then to write what it
    # keeps) so no part stays in a worker's memory through the near-duplicate search
    assert names.count("ngram_matches") == names.count("rejects_writing_kept") == 2
    assert names.count("records_slice") == 4
    # the split (train pool, eval) and the mixture (train, sampled_out) pick over ids and a few columns, the
    # tokenize stage orders train into its shards by id and repeat; the workers write the rows they picked, a task
    # per frame here (fewer than PARTITION_ROWS rows each)
    assert names.count("rows_written") == 5
    report = BuildReport.model_validate_json((Path(out) / "report.json").read_bytes())
    assert report.decontamination["contaminated:evals"].count >= 5  # the eval prompts' near copies were found
    rejected = pl.read_parquet(Path(out) / "rejected.parquet")
    assert rejected.filter(pl.col("reason") == "too_few_tokens")["original"].str.contains('"instruction"').all()
    assert rejected.filter(pl.col("reason") == "too_few_tokens").height > 10
    files = {split: len(list((Path(out) / "tokenized" / split).glob("data-*.arrow"))) for split in ("train", "eval")}
    assert files["train"] > 2 and names.count("tokenize_shard") == files["train"] + files["eval"]
    assert len({worker for name, worker in finished.tasks if name == "tokenize_shard"}) == 2
    parquet = {split: len(split_files.paths(Path(out), split)) for split in ("train", "eval")}
    assert parquet["train"] > 2 and names.count("split_shard") == parquet["train"] + parquet["eval"]
    flowed = _hashes(Path(out))
    assert {k: v for k, v in flowed.items() if k != "manifest.json"} == {k: v for k, v in direct.items()
                                                                        if k != "manifest.json"}


def test_a_worker_lost_in_the_partitioned_dedup_reruns_the_stage(tmp_path: Path, demo: Path, monkeypatch) -> None:
    """A worker that dies in the middle of the partitioned dedup takes results the stage needs with it, which it
    cannot recompute (it lets its intermediate results go as it goes: distributed's FutureCancelledError). The
    stage task is retried (``LOST_WORKER_RETRIES``) and the output is the direct build's. Without the retry the
    build fails at once (tried: LOST_WORKER_RETRIES = 0)."""
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin

    from flows.build_flow import with_runner

    class KillOnce(WorkerPlugin):
        """The first worker to start a task named ``task`` while it does not run the stage's own task dies on the
        spot (its nanny starts a new one), once. (A worker that dies under the stage task makes Dask run that
        task again by itself.)"""

        def __init__(self, flag: str, task: str) -> None:
            self.flag, self.task = flag, task

        def setup(self, worker: Any) -> None:
            self.worker = worker

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            state = self.worker.state
            running = [str(ts.key) for ts in (*state.executing, *state.long_running)]
            if (finish == "executing" and str(key).startswith(self.task) and not os.path.exists(self.flag)
                    and not any(k.startswith("stage_task") for k in running)):
                Path(self.flag).touch()
                os._exit(1)

    direct = _hashes(writer.write(build.run(load_mix(demo))))
    other = tmp_path / "again"
    shutil.copytree(demo.parent, other)
    flag = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(KillOnce(str(flag), "band_entries"))
        _fresh_stages(monkeypatch, tmp_path / "stages")
        out = with_runner("dask", dask_address=cluster.scheduler_address)(str(other / "mix.yaml"))
    assert flag.exists()  # a worker died mid-dedup
    flowed = _hashes(Path(out))
    assert {k: v for k, v in flowed.items() if k != "manifest.json"} == {k: v for k, v in direct.items()
                                                                        if k != "manifest.json"}


def test_served_deployment_runs_on_the_server_and_versions_its_output(tmp_path: Path, write_mix) -> None:
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    _parts(tmp_path, {"a.jsonl": 20})
    mix = write_mix({"name": "nightly", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    serve = subprocess.Popen([str(Path(sys.executable).with_name("pipeline")), "serve", "--mix", str(mix), "--cron",
                              "0 3 * * *"], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    name = "instruct-pipeline-build/nightly"
    try:
        deadline = time.monotonic() + 180
        deployment = None
        while deployment is None:
            assert serve.poll() is None, serve.stdout.read().decode() if serve.stdout else ""
            assert time.monotonic() < deadline, "the deployment was not registered in 180 s"
            with get_client(sync_client=True) as client:
                try:
                    deployment = client.read_deployment_by_name(name)
                except ObjectNotFound:  # until serve has registered it
                    time.sleep(0.5)
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]

        first = run_deployment(name, timeout=300)
        assert first.state.is_completed(), first.state
        _parts(tmp_path, {"b.jsonl": 5})
        second = run_deployment(name, timeout=300)
        assert second.state.is_completed(), second.state
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    root = tmp_path / "out" / "nightly"
    versions = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.name != "latest")
    assert len(versions) == 2 and (root / "latest").resolve().name == versions[-1]
    report = BuildReport.model_validate_json((root / "latest" / "report.json").read_bytes())
    assert report.changes is not None and report.changes.previous == versions[0]
    assert (report.changes.added, report.changes.removed, report.changes.unchanged) == (5, 0, 20)
    assert "## Changes" in (root / "latest" / "report.md").read_text(encoding="utf-8")
    assert [(c.key, c.added, c.unchanged) for c in report.changes.by_source] == [("s", 5, 20)]


def test_cli_runs_the_flow_on_dask_with_its_progress_bar(flow_cli, tmp_path: Path, write_mix) -> None:
    """The CLI's progress callback must not travel with the tasks to the Dask workers (it holds locks)."""
    _parts(tmp_path, {"a.jsonl": 10, "b.jsonl": 10})
    mix = write_mix({"name": "cli-dask", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    result = flow_cli("build", "--mix", str(mix), "--runner", "dask", "--workers", "2")
    assert result.exit_code == 0, result.output
    report = BuildReport.model_validate_json((tmp_path / "out" / "cli-dask" / "report.json").read_bytes())
    assert report.totals["input"] == 20 and report.totals["train"] == 20


def test_a_damaged_output_is_rebuilt_not_trusted(tmp_path: Path, write_mix) -> None:
    """Truncating train.parquet and deleting tokenized/ after a flow build gave "unchanged: nothing to do"."""
    _parts(tmp_path, {"a.jsonl": 30})
    mix = write_mix({"name": "dmg", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    out, _ = _flow_run(mix)
    before = _hashes(Path(out))
    train = Path(out) / "train.parquet"
    train.write_bytes(train.read_bytes()[:200])
    again, second = _flow_run(mix)
    assert _hashes(Path(again)) == before  # rewritten from the cached stages
    assert ("write", "Completed") in _task_states(second, 8)  # every task of a one-file build: write is last
    data = train.read_bytes()
    train.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size: only --verify sees it
    assert _flow_run(mix)[0] == out and _hashes(Path(out))["train.parquet"] != before["train.parquet"]
    _flow_run(mix, verify=True)
    assert _hashes(Path(out)) == before


def test_a_flow_build_that_keeps_nothing_says_why_and_leaves_the_previous_build(flow_cli, tmp_path: Path,
                                                                                  write_mix) -> None:
    _parts(tmp_path, {"a.jsonl": 10})
    mix = write_mix({"name": "empty", "sources": [{"name": "s", "path": "parts/*.jsonl"}]})
    assert flow_cli("build", "--mix", str(mix)).exit_code == 0
    before = _hashes(tmp_path / "out" / "empty")
    write_jsonl(tmp_path / "parts" / "a.jsonl", [{"instruction": "Say it.", "input": "", "output": ""}] * 10)
    result = flow_cli("build", "--mix", str(mix))
    assert result.exit_code == 1 and "no train record left: 10 records in, 10 rejected (empty_output 10)" in \
        result.output, result.output
    assert _hashes(tmp_path / "out" / "empty") == before


def test_a_flow_build_hashes_each_input_once(tmp_path: Path, write_mix, monkeypatch) -> None:
    """The CLI's unchanged-output check, the flow's cache keys and the manifest all read every input's sha256;
    each file is read once per process, and again only once it changes."""
    from flows.keys import build_keys
    from pipeline.io import writers

    _parts(tmp_path, {"a.jsonl": 5, "b.jsonl": 5})
    mix = load_mix(write_mix({"name": "h", "sources": [{"name": "s", "path": "parts/*.jsonl"}]}))
    hashed: list[str] = []
    real = writers.sha256_file

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(writers, "sha256_file", counting)
    writers._input_digest.cache_clear()
    first = build_keys(mix)
    assert build_keys(mix) == first and [f.sha256 for f in writer.input_files(mix)] == [
        real(tmp_path / "parts" / name) for name in ("a.jsonl", "b.jsonl")]
    assert sorted(hashed) == ["a.jsonl", "b.jsonl"]
    _parts(tmp_path, {"a.jsonl": 6})
    assert build_keys(mix).units[0] != first.units[0] and sorted(hashed) == ["a.jsonl", "a.jsonl", "b.jsonl"]

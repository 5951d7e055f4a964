"""Measure the end-to-end build of a scale corpus (issue #9, phase 1: measure, don't fix).

    .venv/bin/python bench/scale/run.py --records 100000 --mode cli              # pipeline build, a subprocess
    .venv/bin/python bench/scale/run.py --records 100000 --mode stages           # the stages in this process
    .venv/bin/python bench/scale/run.py --records 1000000 --mode stages --profile   # + pyinstrument text profile
    .venv/bin/python bench/scale/run.py --records 100000 --mode cli --runner local   # the Prefect flow

The corpus and its mix.yaml come from ``make_corpus.py`` (bench/work/scale/<100k|300k|1m>/), or with
``--corpus short`` from ``make_short_corpus.py`` (bench/work/scale/short-<100k|1m>/). Both modes delete
the build's language cache (``<output.dir>/.cache``) first, so every run detects every text (``--warm`` keeps
it), and set INSTRUCT_PIPELINE_TOKENIZER to ../shared/tokenizers/llama-2 unless it is set.

``cli``: ``pipeline build --mix <mix> --runner <runner>`` as a subprocess; wall time, and the peak of the summed
RSS of the process and all its descendants, polled every 0.1 s (psutil).

``stages``: ``build.run`` (with the language cache folder, as the CLI's direct runner) and ``writer.write`` in
this process, with the stage functions they call wrapped (``needed_tokenizer``, the ``iter_shards`` generator,
``union``, ``dedup_stage``, ``decontaminate_stage``, ``split_stage``, ``mixture_stage``, ``tokenize_stage``,
``assemble``, ``write``): each is timed with ``time.perf_counter``, and what ``finish`` keeps alive between
stages is whatever today's code keeps (the first version of this script re-implemented ``finish`` and went stale
when 5e11400 made it release each stage's input). A sampler process polls the RSS of this process and its workers
every 0.1 s and keeps the peak per stage; ``rss_after_mb`` is VmRSS of this process after the stage. Inside the
shards stage, the per-record filters run in this process and are timed by wrapping their module functions
(``language.language_filter``, ``quality.quality_filter``, ``pii.find_pii``, ``process_unit``): these
time this process's share only; what the spawned worker does is not visible here (before fcc6491 the worker only
read and validated, so the filters' times were all of them; since then it filters its files too); inside
assemble and write,
``profile.build_profile``, ``ledger.reconcile``, ``writers.write_dataset_dict``, ``writers.sha256_file``.

Results go to bench/work/scale/results-<label>-<mode>[-<runner>][-profile]-<commit>[-dirty].json (a rerun on the
same code overwrites), with the commit, the uncommitted files of pipeline/ schemas/ flows/, and the load average
before and after (the machine is shared: timings are +-15-30%).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "bench" / "work" / "scale"
TOKENIZER = ROOT.parent / "shared" / "tokenizers" / "llama-2"
POLL_S = 0.1
MB = 1 << 20

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import label
from make_short_corpus import short_name

# --------------------------------------------------------------------------------------------------- memory

def tree_rss(process: psutil.Process, leave_out: int | None = None) -> list[int]:
    """RSS of ``process`` and each of its descendants but ``leave_out``, in bytes (processes that end meanwhile
    count 0)."""
    sizes = []
    for p in [process, *process.children(recursive=True)]:
        if p.pid == leave_out:
            continue
        try:
            sizes.append(p.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return sizes


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process (all its threads), its live descendants (the worker pool)
    and its children already reaped: on a shared machine the robust measure, where wall time is not."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return total + reaped.ru_utime + reaped.ru_stime


def vm_rss() -> int:
    """This process's current VmRSS, in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Polls the tree RSS of a process every POLL_S; keeps the overall peak, the peak per ``label`` (read by
    ``finish``) and the largest RSS of any one process of the tree (``largest``: a Dask worker's own peak).

    It polls from a process of its own (forked, left out of the tree it measures). As a thread of the measured
    process it took the GIL ten times a second, each /proc read a GIL hand-off, and slowed the GIL-bound stages
    it measured: the short corpus's tokenize stage took 58 s under it and 34 s without (session 13)."""

    def __init__(self, pid: int) -> None:
        context = multiprocessing.get_context("fork")  # no resource tracker process to count in the tree
        self._label: Any = context.Array("c", 64)  # a ctypes char array: .value is its bytes
        self._stop = context.Event()
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_poll, args=(pid, self._label, self._stop, sender), daemon=True)
        self.label = "start"
        self.peak = self.largest = 0
        self.peaks: dict[str, int] = {}

    @property
    def label(self) -> str:
        return self._label.value.decode()

    @label.setter
    def label(self, name: str) -> None:
        self._label.value = name.encode()[:63]

    def start(self) -> None:
        self._process.start()

    def finish(self) -> None:
        self._stop.set()
        self.peak, self.largest, self.peaks = self._results.recv()
        self._process.join()


def _poll(pid: int, label: Any, stop: Any, results: Any) -> None:
    """The sampler process: polls until ``stop``, then sends (peak, largest, peaks by label)."""
    me, peak, largest = os.getpid(), 0, 0
    peaks: dict[str, int] = {}
    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            sizes = tree_rss(process, leave_out=me)
        except psutil.NoSuchProcess:
            break
        rss, name = sum(sizes), label.value.decode()
        peak, largest = max(peak, rss), max(largest, *sizes, 0)
        peaks[name] = max(peaks.get(name, 0), rss)
        stop.wait(POLL_S)
    results.send((peak, largest, peaks))


# --------------------------------------------------------------------------------------------------- setup

def machine_state() -> dict[str, Any]:
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def code_state() -> dict[str, Any]:
    """The commit and the uncommitted files of pipeline/ (other engineers work in this checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return {"commit": git("log", "-1", "--format=%h", "--", "pipeline", "schemas", "flows"),  # their last change
            "dirty": git("status", "--short", "--", "pipeline", "schemas", "flows").splitlines()}


def prepare(mix_path: Path, warm: bool) -> None:
    os.environ.setdefault("INSTRUCT_PIPELINE_TOKENIZER", str(TOKENIZER))
    if not warm:
        from pipeline import build
        from pipeline.config import load_mix
        shutil.rmtree(build.cache_folder(load_mix(mix_path)), ignore_errors=True)


def corpus_info(folder: Path) -> dict[str, Any]:
    info = json.loads((folder / "corpus.json").read_text())
    return {"records": info["records"], "files": len(info["files"]), "bytes": info["bytes"]}


# --------------------------------------------------------------------------------------------------- cli mode

def run_cli(mix_path: Path, runner: str, workers: int | None, base_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``pipeline build`` as a subprocess (environment: ``base_env``, default this process's): wall time, the peak
    of its process tree's RSS and of its largest process, its CPU seconds."""
    # the pipeline of the tree this script lives in (ROOT first on PYTHONPATH), also from a copy of the tree
    command = [sys.executable, "-c", "from pipeline.cli import app; app()", "build", "--mix", str(mix_path),
               "--runner", runner]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = dict(os.environ if base_env is None else base_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if runner != "direct":
        env.setdefault("INSTRUCT_PIPELINE_STATE", str(WORK / "state"))
    before, started = psutil.cpu_times(), time.perf_counter()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(child.pid)
    sampler.start()
    output = child.communicate()[0]
    wall = time.perf_counter() - started
    sampler.finish()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"user": round(children.ru_utime - children_before.ru_utime, 1),
           "system": round(children.ru_stime - children_before.ru_stime, 1)}
    after = psutil.cpu_times()
    return {
        "command": " ".join(command), "returncode": child.returncode, "wall_s": round(wall, 2),
        "peak_rss_mb": round(sampler.peak / MB), "largest_process_mb": round(sampler.largest / MB), "cpu_s": cpu,
        "machine_cpu_busy_s": round((after.user + after.system) - (before.user + before.system), 1),
        "output_tail": output[-3000:],
    }


# --------------------------------------------------------------------------------------------------- stages mode

class Timers:
    """Accumulated seconds of wrapped functions, by label: wall (``seconds``) and this process's CPU, all its
    threads (``cpu``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, module: Any, name: str, label: str) -> None:
        """Time ``module.name`` under ``label``; a function the code of the day no longer has is skipped."""
        original = getattr(module, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu
                self.calls[label] = self.calls.get(label, 0) + 1

        setattr(module, name, timed)


STAGE_FUNCTIONS = (  # (stage, function of pipeline/build.py): what build.run() and build.finish() call, in order,
    # around the global stages (plan.run_stage, timed under each stage's name); then writer.write, and
    # io/workers.iter_shards is wrapped as the "shards" stage
    ("load_tokenizer", "needed_tokenizer"), ("union", "union"), ("assemble", "assemble"),
)


def run_stages(mix_path: Path, workers: int | None, profile_path: Path | None) -> dict[str, Any]:
    """``build.run`` (as ``pipeline build --runner direct`` calls it) and ``writer.write``, with every stage
    function of STAGE_FUNCTIONS, each global stage of ``plan.STAGES`` and the ``iter_shards`` generator wrapped
    to time it and label the RSS sampler: what finish() keeps alive between stages is whatever the code of the
    day keeps."""
    from pipeline import build, language, ledger, pii, plan, quality, writer
    from pipeline.config import load_mix
    from pipeline.io import workers as workers_pool
    from pipeline.io import writers
    from pipeline.report import profile

    timers = Timers()
    timers.wrap(workers_pool, "process_unit", "shards.read_validate_normalize (this process's share)")
    timers.wrap(language, "language_filter", "shards.language (this process's share)")
    timers.wrap(quality, "quality_filter", "shards.quality (this process's share)")
    timers.wrap(pii, "find_pii", "shards.pii (this process's share)")
    timers.wrap(profile, "build_profile", "assemble.profile")
    timers.wrap(ledger, "reconcile", "assemble.ledger")
    timers.wrap(writers, "write_dataset_dict", "write.tokenized_dataset")
    timers.wrap(writers, "sha256_file", "write.sha256")

    sampler = Sampler(os.getpid())
    sampler.start()
    stages: list[dict[str, Any]] = []

    def finished(name: str, seconds: float, cpu: float) -> None:
        rss = vm_rss() / MB
        stages.append({"stage": name, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
                       "rss_after_mb": round(rss)})
        print(f"  {name:<14} {seconds:8.2f} s  cpu {cpu:8.2f} s  rss {rss:7.0f} MB", flush=True)

    def stage(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            sampler.label = name
            started, cpu = time.perf_counter(), tree_cpu()
            value = function(*args, **kwargs)
            finished(name, time.perf_counter() - started, tree_cpu() - cpu)
            sampler.label = "between stages"
            return value
        return timed

    def shards_stage(function: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:  # run() consumes it with list(): no gaps
            sampler.label = "shards"
            started, cpu = time.perf_counter(), tree_cpu()
            yield from function(*args, **kwargs)
            finished("shards", time.perf_counter() - started, tree_cpu() - cpu)
            sampler.label = "between stages"
        return timed

    for name, function in STAGE_FUNCTIONS:
        setattr(build, function, stage(name, getattr(build, function)))
    run_stage = plan.run_stage
    plan.run_stage = lambda row, records, context: stage(row.name, run_stage)(row, records, context)
    writer.write = stage("write", writer.write)
    workers_pool.iter_shards = shards_stage(workers_pool.iter_shards)

    profiler = None
    if profile_path is not None:
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.005)
        profiler.start()
    started, cpu = time.perf_counter(), tree_cpu()
    mix = load_mix(mix_path)
    result = build.run(mix, workers=workers, cache=build.cache_folder(mix))  # as the CLI's direct runner
    writer.write(result)
    wall, cpu = time.perf_counter() - started, tree_cpu() - cpu
    if profiler is not None:
        profiler.stop()
        assert profile_path is not None
        profile_path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    sampler.finish()
    print("  peak of the process tree per stage (MB):", flush=True)
    for row in stages:
        row["peak_tree_mb"] = round(sampler.peaks.get(row["stage"], 0) / MB)
        print(f"  {row['stage']:<14} {row['peak_tree_mb']:7d}", flush=True)
    report = result.report
    return {
        "workers": workers_pool.default_workers(mix) if workers is None else workers,
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(sampler.peak / MB),
        "stages": stages,
        "between_stages_peak_mb": round(sampler.peaks.get("between stages", 0) / MB),
        "sub_timers_s": {k: round(v, 2) for k, v in sorted(timers.seconds.items())},
        "sub_timers_cpu_s": {k: round(v, 2) for k, v in sorted(timers.cpu.items())},
        "totals": report.totals,
        "tokens": {"train": report.tokens.train_tokens, "eval": report.tokens.eval_tokens} if report.tokens else None,
        "dedup": {"exact_removed": report.dedup.exact_removed, "near_removed": report.dedup.near_removed,
                  "candidate_pairs": report.dedup.candidate_pairs} if report.dedup else None,
        "profile": str(profile_path) if profile_path else None,
    }


# --------------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="which corpus: bench/work/scale/<label>/")
    parser.add_argument("--corpus", choices=("scale", "short"), default="scale",
                        help="scale: make_corpus.py's (<label>/); short: make_short_corpus.py's (short-<label>/)")
    parser.add_argument("--mix", type=Path, default=None, help="default: the corpus's mix.yaml")
    parser.add_argument("--mode", choices=("cli", "stages"), default="cli")
    parser.add_argument("--runner", choices=("direct", "local", "dask"), default="direct", help="cli mode only")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="stages mode: pyinstrument, profile-<label>.txt")
    parser.add_argument("--warm", action="store_true", help="keep the language cache of an earlier run")
    parser.add_argument("--tag", default="", help="added to the results' file name (e.g. base / after, when "
                        "the script runs from a copy of the tree that is not a git checkout)")
    args = parser.parse_args()
    name = label(args.records) if args.corpus == "scale" else short_name(args.records)
    mix_path = (args.mix or WORK / name / "mix.yaml").resolve()
    prepare(mix_path, args.warm)
    code = code_state()
    suffix = f"-{args.runner}" if args.mode == "cli" and args.runner != "direct" else ""
    suffix += "-profile" if args.profile else ""
    suffix += f"-{code['commit']}" + ("-dirty" if code["dirty"] else "")  # the code moves under shared checkouts
    suffix += f"-{args.tag}" if args.tag else ""
    result: dict[str, Any] = {"label": name, "tag": args.tag, "root": str(ROOT),
                              "mode": args.mode, "runner": args.runner if args.mode == "cli" else None,
                              "warm_language_cache": args.warm, "corpus": corpus_info(mix_path.parent),
                              "code": code, "before": machine_state()}
    print(f"{name} {args.mode}{suffix}: load {result['before']['loadavg']}", flush=True)
    if args.mode == "cli":
        result.update(run_cli(mix_path, args.runner, args.workers))
    else:
        profile = WORK / f"profile-{name}{suffix}.txt" if args.profile else None
        result.update(run_stages(mix_path, args.workers, profile))
    result["after"] = machine_state()
    out = WORK / f"results-{name}-{args.mode}{suffix}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("output_tail", "stages")}, indent=2,
                     ensure_ascii=False))
    if args.mode == "cli" and result["returncode"] != 0:
        print(result["output_tail"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

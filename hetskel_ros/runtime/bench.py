"""``hetskel-bench``: latency and throughput of the inference backends, written as JSON with the machine's details.

Benchmarks are named cases (``CASES``); each returns result rows. The "model" case measures, per model size and
backend: batch-1 latency (p50/p90/p99 over >= 200 runs after warm-up) and throughput at batch 32, on real mocap
windows. Backends are measured interleaved (round-robin blocks), so on a shared machine a burst of load from
another process hits every backend alike instead of whichever happened to run then; the load average is recorded.
ONNX Runtime CPU vs PyTorch CPU at the same thread count is reported as a ratio ("comparisons").
A later case (e.g. end-to-end: skeleton messages in, actions out) adds itself to ``CASES``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.model.config import PRESETS, ModelConfig, preset
from hetskel_ros.paths import relative
from hetskel_ros.runtime.backends import BACKENDS, create_backend
from hetskel_ros.runtime.base import Backend, BackendError
from hetskel_ros.runtime.onnxruntime_backend import default_threads
from hetskel_ros.runtime.samples import bench_bundle, mocap_inputs
from hetskel_ros.topology.sequences import default_mocap_path, load_sequences

log = logging.getLogger("hetskel_ros.runtime")

# batch-1 runs and batch-32 runs per size when not given: the paper size takes ~0.2 s per sample on 2 CPU cores
DEFAULT_RUNS = {"small": (200, 20), "paper": (50, 2)}
GOAL_P50_MS = 5.0  # issue 4: ONNX Runtime batch-1 p50 on the default (small) size, this machine's 2 cores
GOAL_RATIO = 0.5  # ... and at most half of PyTorch eager's p50 in the same run


@dataclass
class BenchSettings:
    sizes: list[str]
    backends: list[str]
    threads: list[int]
    runs: int | None = None  # batch-1 runs (None: DEFAULT_RUNS per size)
    throughput_runs: int | None = None
    warmup: int = 30
    batch: int = 32
    rounds: int = 10
    device: str = "auto"
    precision: str = "fp16"
    cache_dir: str | None = None
    bundle: str | None = None  # measure this bundle file instead of one per size
    extra: dict = field(default_factory=dict)


def percentiles(times_s: list[float]) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {"runs": len(ms), "p50_ms": _r(np.percentile(ms, 50)), "p90_ms": _r(np.percentile(ms, 90)),
            "p99_ms": _r(np.percentile(ms, 99)), "mean_ms": _r(ms.mean()), "min_ms": _r(ms.min())}


def _r(value: float) -> float:
    return round(float(value), 4)


def interleaved_timings(calls: dict[str, Callable[[], object]], runs: int, rounds: int, warmup: int,
                        cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds per call for each named callable, measured in ``rounds`` round-robin blocks after ``warmup``.

    With ``cpu`` given, the process CPU seconds of each call are appended there too: on a machine shared with other
    jobs, a single-threaded call's CPU time is its cost without the time it spent preempted.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu_times: dict[str, list[float]] = cpu if cpu is not None else {}
    for name in calls:
        cpu_times.setdefault(name, [])
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    for block in per_round:
        for name, call in calls.items():
            for _ in range(block):
                start_cpu, start = time.process_time(), time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
                cpu_times[name].append(time.process_time() - start_cpu)
    return times


def _torch_threads_guard(backend: Backend, threads: int) -> Callable[[], None]:
    """torch's thread count is process-wide: put it back before each torch block (another variant may change it)."""
    if backend.name != "torch":
        return lambda: None
    import torch

    return lambda: torch.set_num_threads(threads) if torch.get_num_threads() != threads else None


def preset_name(config: ModelConfig) -> str:
    """The size preset whose shape fields a config has, or "custom"."""
    for name in PRESETS:
        reference = preset(name, topologies=config.topologies, num_classes=config.num_classes)
        if all(getattr(config, key) == getattr(reference, key) for key in _SHAPE_FIELDS):
            return name
    return "custom"


_SHAPE_FIELDS = ("joints", "window", "patch", "dim", "depth", "mlp_hidden", "feature_dim", "lifter_hidden")


def _calls(backends: dict[str, Backend], threads: int, feeds: dict) -> dict[str, Callable[[], object]]:
    def call(backend: Backend) -> Callable[[], object]:
        guard = _torch_threads_guard(backend, threads)
        return lambda: (guard(), backend.infer(feeds))

    return {name: call(backend) for name, backend in backends.items()}


def model_case(settings: BenchSettings) -> list[dict]:
    """Batch-1 latency and batch-N throughput per size, thread count and backend, on real mocap windows."""
    rows: list[dict] = []
    mocap = default_mocap_path()
    data = load_sequences(mocap)
    for size in settings.sizes:
        if settings.bundle:
            bundle, source = load_bundle(settings.bundle), relative(settings.bundle)
            size = preset_name(bundle.config)
        else:
            bundle, source = bench_bundle(size)
            source = relative(source) if Path(source).exists() else source  # a file, or a description
        runs, tp_runs = DEFAULT_RUNS.get(size, DEFAULT_RUNS["small"])
        runs = settings.runs or runs
        tp_runs = settings.throughput_runs or tp_runs
        inputs = mocap_inputs(bundle, settings.batch, "both", data=data)
        single = {k: v[:1] for k, v in inputs.items()}
        for threads in settings.threads:
            backends: dict[str, Backend] = {}
            for name in settings.backends:
                try:
                    backends[name] = create_backend(name, bundle, threads=threads, device=settings.device,
                                                    precision=settings.precision, cache_dir=settings.cache_dir,
                                                    max_batch=settings.batch)
                except BackendError as exc:
                    if threads == settings.threads[0]:
                        log.warning("bench: %s skipped: %s", name, exc)
                        rows.append({"case": "model", "size": size, "backend": name, "threads": threads,
                                     "skipped": " ".join(str(exc).split())})
                    continue
                if backends[name].device != "cpu" and threads != settings.threads[0]:
                    backends.pop(name).close()  # CPU threads do not change a GPU backend: measured once
            log.info("bench: %s, %d thread(s), batch 1 x %d runs: %s", size, threads, runs, list(backends))
            load = [round(x, 2) for x in os.getloadavg()]
            cpu: dict[str, list[float]] = {}
            latency = interleaved_timings(_calls(backends, threads, single), runs, min(settings.rounds, runs),
                                          min(settings.warmup, max(1, runs // 5)), cpu)
            log.info("bench: %s, %d thread(s), batch %d x %d runs", size, threads, settings.batch, tp_runs)
            batched = interleaved_timings(_calls(backends, threads, inputs), tp_runs,
                                          min(settings.rounds, tp_runs), max(1, min(3, settings.warmup)))
            for name, backend in backends.items():
                per_batch = float(np.median(batched[name]))
                rows.append({
                    "case": "model", "size": size, "bundle": source, "backend": name, "device": backend.device,
                    "precision": backend.precision, "threads": threads, "loadavg_before": load,
                    "batch1": {**percentiles(latency[name]), "cpu_p50_ms": _r(np.median(cpu[name]) * 1e3)},
                    f"batch{settings.batch}": {"runs": len(batched[name]), "p50_ms_per_batch": _r(per_batch * 1e3),
                                               "samples_per_s": _r(settings.batch / per_batch)},
                })
                backend.close()
    return rows


def end_to_end_case(settings: BenchSettings) -> list[dict]:
    """Skeleton messages in, actions out, through a recognizer process (hetskel_ros.ros.bench_end_to_end; rclpy is
    imported only when this case runs, so this layer stays free of ROS)."""
    from hetskel_ros.ros.bench_end_to_end import end_to_end_case as run_case

    return run_case(settings)


def mediapipe_pose_case(settings: BenchSettings) -> list[dict]:
    """MediaPipe Pose's time per frame as the mediapipe_pose node runs it (hetskel_ros.ros.bench_mediapipe; mediapipe
    is imported only when this case runs)."""
    from hetskel_ros.ros.bench_mediapipe import mediapipe_pose_case as run_case

    return run_case(settings)


CASES: dict[str, Callable[[BenchSettings], list[dict]]] = {"model": model_case, "end_to_end": end_to_end_case,
                                                           "mediapipe_pose": mediapipe_pose_case}


def comparisons(rows: list[dict], default_threads: dict[str, int] | None = None) -> list[dict]:
    """ONNX Runtime CPU vs PyTorch CPU p50 at batch 1, with the issue's goal for the small size.

    One entry per size and thread count (both at the same count: the like-for-like ratio), and one per size for
    each backend at its own default thread count (what a user gets without configuring anything), when measured.
    """
    out = []
    measured = [r for r in rows if r.get("case") == "model" and "batch1" in r and r["device"] == "cpu"]
    pairs = [(ort, eager, "same threads") for ort in measured for eager in measured
             if ort["backend"] == "onnxruntime" and eager["backend"] == "torch"
             and (ort["size"], ort["threads"]) == (eager["size"], eager["threads"])]
    if default_threads:
        pairs += [(ort, eager, "defaults") for ort in measured for eager in measured
                  if ort["backend"] == "onnxruntime" and eager["backend"] == "torch" and ort["size"] == eager["size"]
                  and ort["threads"] == default_threads["onnxruntime"] and eager["threads"] == default_threads["torch"]
                  and ort["threads"] != eager["threads"]]
    for ort, eager, basis in pairs:
        ratio = ort["batch1"]["p50_ms"] / eager["batch1"]["p50_ms"]
        entry = {"size": ort["size"], "basis": basis, "onnxruntime_threads": ort["threads"],
                 "torch_threads": eager["threads"], "onnxruntime_p50_ms": ort["batch1"]["p50_ms"],
                 "torch_p50_ms": eager["batch1"]["p50_ms"], "onnxruntime_over_torch_p50": _r(ratio),
                 "onnxruntime_over_torch_cpu_p50": _r(ort["batch1"]["cpu_p50_ms"] / eager["batch1"]["cpu_p50_ms"])}
        key = next((k for k in ort if k.startswith("batch") and k != "batch1"), None)
        if key:
            entry["onnxruntime_over_torch_throughput"] = _r(ort[key]["samples_per_s"] / eager[key]["samples_per_s"])
        if ort["size"] == "small":
            entry["goal"] = f"p50 <= {GOAL_P50_MS} ms and ratio <= {GOAL_RATIO}"
            entry["goal_met"] = bool(ort["batch1"]["p50_ms"] <= GOAL_P50_MS and ratio <= GOAL_RATIO)
        out.append(entry)
    return out


def machine_info() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    for module in ("numpy", "onnxruntime", "torch", "tensorrt"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    info["gpu"] = _gpu_name()
    return info


def _torch_default_threads() -> int | None:
    """torch's own thread count before any backend set it (read at start: the torch backend may change it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install reads as "no GPU" here; the backends report details
        return None


def run(cases: list[str], settings: BenchSettings, name: str, out_dir: Path) -> Path:
    machine = machine_info()
    machine["default_threads"] = {"onnxruntime": default_threads(), "torch": _torch_default_threads()}
    rows: list[dict] = []
    started = time.time()
    for case in cases:
        rows.extend(CASES[case](settings))
    machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "name": name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["hetskel-bench", *sys.argv[1:]]), "seconds": round(time.time() - started, 1),
        "machine": machine,
        "settings": {k: relative(v) if k == "bundle" and v else v for k, v in settings.__dict__.items()},
        "input": f"real mocap windows from {relative(default_mocap_path())} "
        "(Bandai Namco Research Motion Dataset, CC BY-NC 4.0), 3D and 2D", "results": rows,
        "comparisons": comparisons(rows, machine["default_threads"]),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def summary(path: Path) -> str:
    report = json.loads(path.read_text())
    lines = [f"{path}  ({report['machine']['cpu']}, {report['machine']['usable_cores']} cores, "
             f"load {report['machine']['loadavg_start']} -> {report['machine']['loadavg_end']})"]
    for row in report["results"]:
        if "summary" in row:  # cases that describe themselves (end_to_end)
            lines.append(f"  {row['summary']}")
            continue
        if "skipped" in row:
            lines.append(f"  {row['size']:6} {row['backend']:12} threads {row['threads']}: skipped ({row['skipped']})")
            continue
        b1 = row["batch1"]
        tp = next(v for k, v in row.items() if k.startswith("batch") and k != "batch1")
        lines.append(f"  {row['size']:6} {row['backend']:12} {row['device']:7} {row['precision']} threads "
                     f"{row['threads']}: batch-1 p50 {b1['p50_ms']:.3f} ms p99 {b1['p99_ms']:.3f} ms "
                     f"(CPU {b1['cpu_p50_ms']:.3f} ms); "
                     f"{tp['samples_per_s']:.1f} samples/s at batch {report['settings']['batch']}")
    for c in report["comparisons"]:
        goal = f"  goal ({c['goal']}): {'met' if c['goal_met'] else 'NOT met'}" if "goal" in c else ""
        lines.append(f"  {c['size']:6} {c['basis']} (onnxruntime {c['onnxruntime_threads']}, torch "
                     f"{c['torch_threads']} threads): onnxruntime/torch p50 = {c['onnxruntime_over_torch_p50']:.3f} "
                     f"(CPU time {c['onnxruntime_over_torch_cpu_p50']:.3f}){goal}")
    return "\n".join(lines)


def default_name() -> str:
    gpu = _gpu_name()
    return re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-") if gpu else "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hetskel-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", dest="cases", nargs="+", default=["model"], choices=sorted(CASES))
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=sorted(PRESETS),
                        help="model size presets (small: the shipped bundle when it exists)")
    parser.add_argument("--bundle", default=None, help="measure this bundle file instead (--sizes is ignored)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS),
                        help="unavailable ones are recorded as skipped with the reason")
    parser.add_argument("--threads", nargs="+", type=int, default=None,
                        help="CPU thread counts to measure (default: 1 and every usable core)")
    parser.add_argument("--runs", type=int, default=None, help="batch-1 runs (default: 200; 50 for paper)")
    parser.add_argument("--throughput-runs", type=int, default=None, help="batch runs (default: 20; 2 for paper)")
    parser.add_argument("--warmup", type=int, default=30, help="batch-1 warm-up calls (at most a fifth of the runs)")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="fp16", choices=["fp16", "fp32"], help="TensorRT precision")
    parser.add_argument("--cache-dir", default=None, help="TensorRT engine cache")
    parser.add_argument("--name", default=None, help="result name: bench/results/<name>.json (default: cpu or GPU)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads = args.threads or sorted({1, default_threads(), len(os.sched_getaffinity(0))})
    settings = BenchSettings(sizes=args.sizes, backends=args.backends, threads=threads, runs=args.runs,
                             throughput_runs=args.throughput_runs, warmup=args.warmup, batch=args.batch,
                             device=args.device, precision=args.precision, cache_dir=args.cache_dir,
                             bundle=args.bundle)
    if args.bundle:
        settings.sizes = ["bundle"]
    path = run(args.cases, settings, args.name or default_name(), args.out)
    print(summary(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""hetskel-bench case "mediapipe_pose": MediaPipe Pose's time per frame, as the mediapipe_pose node runs it.

``hetskel-bench --case mediapipe_pose --name mediapipe`` writes bench/results/mediapipe.json.

The timed call is :meth:`PoseEstimator.process` (the node's MediaPipe step: landmarks of one RGB frame, converted to
arrays) on a real photo, scikit-image's 512x512 ``astronaut``, with ``model_complexity`` 1 (the model the
mediapipe 0.10.21 wheel bundles). Variants:
* ``tracking`` (the node's mode, ``static_image_mode`` False): after the first frame MediaPipe follows the person
  from the previous landmarks and runs only the landmark model;
* ``detect_every_frame`` (``static_image_mode`` True): the person detector runs on every frame too (the cost of a
  frame where the person was just lost or first appears);
* ``tracking`` on a 1280x720 frame (the photo on a grey canvas): what a 720p camera costs.
Wall and process CPU time per frame (p50/p90/p99) after warm-up. Image decoding (< 2 ms for raw 720p) is not in it.
mediapipe and cv2 live only in this ROS layer; hetskel_ros.runtime.bench imports this module only for this case.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from hetskel_ros.ros.mediapipe_pose import PoseEstimator

log = logging.getLogger("hetskel_ros.runtime")

DEFAULT_RUNS = 200
WARMUP = 10


def _ms_percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"runs": int(ms.size), **{f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)},
            "mean_ms": round(float(ms.mean()), 3), "min_ms": round(float(ms.min()), 3)}


def time_estimator(frame: np.ndarray, static_image_mode: bool, runs: int, warmup: int = WARMUP) -> dict[str, Any]:
    """Wall and CPU time per frame of one PoseEstimator on the same frame, and whether it found the person."""
    estimator = PoseEstimator(model_complexity=1, static_image_mode=static_image_mode)
    try:
        for _ in range(warmup):
            found = estimator.process(frame.copy()) is not None
        wall, cpu = [], []
        for _ in range(runs):
            image = frame.copy()  # the node hands MediaPipe a fresh frame each time (process marks it read-only)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            found = estimator.process(image) is not None
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    finally:
        estimator.close()
    return {"found_person": found, "wall": _ms_percentiles(wall), "cpu": _ms_percentiles(cpu)}


def mediapipe_pose_case(settings: Any) -> list[dict]:
    """Rows for hetskel-bench (``settings.runs`` frames per variant; default 200)."""
    import mediapipe
    import skimage
    import skimage.data

    runs = settings.runs or DEFAULT_RUNS
    photo = np.ascontiguousarray(skimage.data.astronaut())
    canvas = np.full((720, 1280, 3), 96, np.uint8)
    canvas[104:616, 384:896] = photo
    variants = [("tracking", photo, False), ("detect_every_frame", photo, True), ("tracking", canvas, False)]
    rows = []
    for mode, frame, static in variants:
        size = f"{frame.shape[1]}x{frame.shape[0]}"
        log.info("bench: mediapipe_pose %s %s, %d frames", mode, size, runs)
        timing = time_estimator(frame, static, runs, min(settings.warmup, WARMUP) or 1)
        wall, cpu = timing["wall"], timing["cpu"]
        rows.append({
            "case": "mediapipe_pose", "mode": mode, "image": size, "model_complexity": 1,
            "mediapipe": mediapipe.__version__, "found_person": timing["found_person"],
            "input": f"scikit-image {skimage.__version__} data.astronaut() (512x512 RGB photo, public domain)"
                     + ("" if size == "512x512" else f" on a {size} grey canvas"),
            "per_frame": wall, "per_frame_cpu": cpu,
            "summary": f"mediapipe_pose {mode:18} {size:8} model_complexity 1: p50 {wall['p50_ms']:.1f} ms, "
                       f"p99 {wall['p99_ms']:.1f} ms (CPU p50 {cpu['p50_ms']:.1f} ms) -> "
                       f"{1000 / wall['p50_ms']:.0f} frames/s",
        })
        log.info("bench: %s", rows[-1]["summary"])
    return rows

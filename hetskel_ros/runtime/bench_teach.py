"""``python -m hetskel_ros.runtime.bench_teach``: how long teaching takes, 30 actions x 5 examples, on this machine.

Thirty classes of real motion: the Bandai Namco mocap's 10 actions in 3 styles (``active``, ``feminine``,
``masculine``; action and style make the class, so neighbouring classes differ only in how the action is done),
5 sequences each drawn at a fixed seed. Timed as ``hetskel-teach`` runs it on a sequence set: feature extraction
through the feature API (ONNX Runtime, 1 thread), cross-validation of both head kinds, the final fit, the
calibration and the bundle write. Writes ``bench/results/teach_time.json`` (repository-relative paths). Without the
full mocap set (``../shared/data/bandai-namco-motion``) it records why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import load_bundle, save_bundle
from hetskel_ros.paths import relative, share_dir
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.runtime.teach import sequence_examples, taught_bundle, teach
from hetskel_ros.topology.sequences import full_mocap_path, load_sequences

STYLES = ("active", "feminine", "masculine")
TARGET_S = 60.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_teach", description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=share_dir() / "bench" / "results" / "teach_time.json")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    source = full_mocap_path()
    out: dict = {"name": "teach_time", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "command": " ".join(["python -m hetskel_ros.runtime.bench_teach",
                                      *(sys.argv[1:] if argv is None else argv)]),
                 "target": f"30 actions x 5 examples taught in <= {TARGET_S:g} s on this 2-core machine",
                 "data": relative(source), "loadavg_start": os.getloadavg()}
    if not source.is_file():
        out["skipped"] = f"{relative(source)} is missing"
    else:
        data = load_sequences(source)
        style_index = [data.style_names.index(s) for s in STYLES]
        keep = np.flatnonzero(np.isin(data.styles, style_index))
        data = data.subset(keep)
        names = tuple(f"{a}/{data.style_names[s]}" for s in style_index for a in data.label_names)
        labels = np.array([names.index(f"{data.label_names[a]}/{data.style_names[s]}")
                           for a, s in zip(data.labels, data.styles, strict=True)])
        data = replace(data, labels=labels, label_names=names)
        began = time.perf_counter()
        base = load_bundle(default_bundle_path())
        extractor = open_extractor(base, threads=1)
        examples = sequence_examples(extractor, data, args.per_class, args.seed)
        extracted = time.perf_counter()
        taught = teach(base, examples, "replace")
        fitted = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            save_bundle(taught_bundle(base, taught, {"bench": "teach_time"}), Path(tmp) / "t.hetskel")
        done = time.perf_counter()
        out.update({
            "classes": len(names), "examples": len(examples), "windows": int(sum(len(e.features) for e in examples)),
            "seconds": {"total": round(done - began, 2), "load_and_extract": round(extracted - began, 2),
                        "cross_validate_fit_calibrate": round(fitted - extracted, 2),
                        "write_bundle": round(done - fitted, 2)},
            "head": taught.head.info["kind"],
            "cv_accuracy": {k: round(r.accuracy, 4) for k, r in taught.results.items()},
            "cv_window_accuracy": {k: round(r.window_accuracy, 4) for k, r in taught.results.items()},
            "met": bool(done - began <= TARGET_S),
            "note": "timing: the accuracies are not held-out figures (the shipped encoder was pretrained, without "
                    "labels, on these styles' sequences)"})
    out["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

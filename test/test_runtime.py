"""Inference runtime: backends agree with the PyTorch model on real mocap, the fallback chain works and says why,
the TensorRT engine cache keys and invalidates correctly, and hetskel-bench writes its report.

The bundle is the shipped models/default.hetskel when it exists, else an untrained small model (parity and
fallback do not depend on what the weights learned). Windows come from the real Bandai Namco mocap
(Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0).
GPU tests (TensorRT, ONNX Runtime CUDA, PyTorch CUDA) carry the ``gpu`` mark and skip, saying why, without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hetskel_ros.model.bundle import Bundle, BundleError, load_bundle, save_bundle
from hetskel_ros.runtime import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    BackendError,
    BackendOptions,
    bench,
    create_backend,
    load_backend,
)
from hetskel_ros.runtime.engine_cache import EngineCache, EngineKey, default_cache_dir, engine_key
from hetskel_ros.runtime.samples import bench_bundle, mocap_inputs
from hetskel_ros.runtime.tensorrt_backend import effective_precision
from hetskel_ros.topology.sequences import default_mocap_path, load_sequences
from hetskel_ros.topology.unified import load_unified

PARITY = 1e-4  # issue 4: max abs difference of scores, FP32
LOGGER = "hetskel_ros.runtime"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return bench_bundle("small")[0]


@pytest.fixture(scope="module")
def mocap():
    return load_sequences(default_mocap_path())


@pytest.fixture(scope="module")
def onnxruntime_cpu(bundle):
    return create_backend("onnxruntime", bundle, device="cpu")


@pytest.fixture(scope="module")
def torch_cpu(bundle):
    return create_backend("torch", bundle, device="cpu")


def _rows(inputs: dict, rows: slice) -> dict:
    return {k: v[rows] for k, v in inputs.items()}


# -- parity on real data ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["both", "3d", "2d", "mixed"])
def test_onnxruntime_matches_torch_on_real_mocap_windows(bundle, mocap, onnxruntime_cpu, torch_cpu, mode):
    inputs = mocap_inputs(bundle, 12, mode, data=mocap)
    assert inputs["m3d"].any() or mode == "2d"
    assert inputs["m2d"].any() or mode == "3d"
    features, scores = onnxruntime_cpu.infer(inputs)  # batch 12: the dynamic batch axis
    ref_features, ref_scores = torch_cpu.infer(inputs)
    assert scores.shape == (12, len(bundle.label_names)) and features.shape == (12, bundle.config.feature_dim)
    assert np.abs(scores - ref_scores).max() <= PARITY
    assert np.abs(features - ref_features).max() <= PARITY * max(1.0, np.abs(ref_features).max())
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    for row in (0, 5, 11):  # batch 1 gives the same answer as that row of a batch
        one_features, one_scores = onnxruntime_cpu.infer(_rows(inputs, slice(row, row + 1)))
        assert np.abs(one_scores[0] - ref_scores[row]).max() <= PARITY
        assert np.abs(one_features[0] - features[row]).max() <= 1e-5 * max(1.0, np.abs(features[row]).max())


def test_input_flags_choose_what_the_model_sees(bundle, mocap, onnxruntime_cpu):
    """Fused input differs from 2D alone; from 3D alone only under the paper's plain mean, since per-joint fusion
    ("prefer_3d") takes every joint the mocap measured from 3D and the COCO view measures no other. Zeroed absent
    inputs do not matter (the flags, not the zeros, say what is absent)."""
    both = mocap_inputs(bundle, 4, "both", data=mocap)
    only3d = mocap_inputs(bundle, 4, "3d", data=mocap)
    only2d = mocap_inputs(bundle, 4, "2d", data=mocap)
    f_both, f_3d, f_2d = (onnxruntime_cpu.infer(x)[0] for x in (both, only3d, only2d))
    assert np.abs(f_both - f_2d).max() > 1e-3
    tolerance = 1e-5 * max(1.0, np.abs(f_3d).max())
    if bundle.config.fusion == "prefer_3d":
        assert np.abs(f_both - f_3d).max() <= tolerance
    else:
        assert np.abs(f_both - f_3d).max() > 1e-3
    noisy2d = dict(only3d, x2d=np.full_like(only3d["x2d"], 5.0), m2d=np.ones_like(only3d["m2d"]))
    assert np.abs(onnxruntime_cpu.infer(noisy2d)[0] - f_3d).max() <= tolerance


def test_the_rgb_stream_stands_in_for_arms_the_depth_skeleton_lost(bundle, mocap, onnxruntime_cpu):
    """Fused input, eq. 8 with "prefer_3d": where the 3D skeleton lost both arms, the lifted 2D arms fill in, so the
    answer stays closer to the one from the complete 3D skeleton than 3D alone with the arms missing."""
    if bundle.config.fusion != "prefer_3d" or not bundle.provenance.get("metrics"):
        pytest.skip("needs the shipped, trained default bundle")
    arms = load_unified().indices(["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                                   "right_wrist"])
    both = mocap_inputs(bundle, 40, "both", data=mocap)
    complete3d = mocap_inputs(bundle, 40, "3d", data=mocap)
    lost_arms = {name: value.copy() for name, value in both.items()}
    lost_arms["m3d"][:, :, arms] = 0
    lost_arms["x3d"][:, :, arms] = 0
    lost_arms_3d_only = dict(lost_arms, x2d=np.zeros_like(both["x2d"]), m2d=np.zeros_like(both["m2d"]),
                             has2d=np.zeros_like(both["has2d"]))
    reference = onnxruntime_cpu.infer(complete3d)[1]
    fused = onnxruntime_cpu.infer(lost_arms)[1]
    alone = onnxruntime_cpu.infer(lost_arms_3d_only)[1]
    agree_fused = (fused.argmax(1) == reference.argmax(1)).mean()
    agree_alone = (alone.argmax(1) == reference.argmax(1)).mean()
    assert agree_fused > agree_alone, (agree_fused, agree_alone)
    assert np.abs(fused - reference).sum(1).mean() < np.abs(alone - reference).sum(1).mean()


def test_batches_beyond_max_batch_are_split(bundle, mocap, onnxruntime_cpu):
    inputs = mocap_inputs(bundle, 10, "mixed", data=mocap)
    small = create_backend("onnxruntime", bundle, device="cpu", max_batch=4)
    assert small.max_batch == 4
    np.testing.assert_allclose(small.infer(inputs)[1], onnxruntime_cpu.infer(inputs)[1], atol=1e-6)


def test_saved_bundle_file_runs_on_every_cpu_backend(bundle, mocap, tmp_path, torch_cpu):
    path = save_bundle(Bundle(config=bundle.config, unified_joints=bundle.unified_joints,
                              label_names=bundle.label_names, weights=bundle.weights, onnx=bundle.onnx,
                              head=bundle.head),  # the shipped bundle's head is outside its graph (robot views)
                       tmp_path / "model.hetskel")
    loaded = load_bundle(path)
    inputs = mocap_inputs(loaded, 3, "both", data=mocap)
    reference = torch_cpu.infer(inputs)[1]
    for name in ("onnxruntime", "torch"):
        backend = create_backend(name, loaded, device="cpu")
        assert (backend.name, backend.device, backend.precision) == (name, "cpu", "fp32")
        assert np.abs(backend.infer(inputs)[1] - reference).max() <= PARITY


def _rewrite(path, tmp_path, name: str, **parts: bytes):
    """A copy of bundle ``path`` with archive members replaced (b"" removes one)."""
    target = tmp_path / f"{name}.hetskel"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for member in source.namelist():
            data = parts.pop(member, source.read(member))
            if data:
                out.writestr(member, data)
    return target


def _meta(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


BAD_BUNDLES = {  # what is wrong -> (members to replace, text the error must hold)
    "meta.json is a JSON list": (lambda m: {"meta.json": b"[1, 2]"}, "must be a JSON object, got a JSON list"),
    "meta.json without config": (lambda m: {"meta.json": json.dumps({k: v for k, v in m.items() if k != "config"})
                                            .encode()}, "lacks 'config'"),
    "a string format_version": (lambda m: {"meta.json": json.dumps({**m, "format_version": "1"}).encode()},
                                "format_version '1', expected the number 1"),
    "meta.json not JSON": (lambda m: {"meta.json": b"{not json"}, "meta.json is not readable"),
    "garbage weights": (lambda m: {"weights.npz": np.random.default_rng(0).bytes(4000)}, "weights.npz is not readable"),
    "no weights": (lambda m: {"weights.npz": b""}, "lacks weights.npz"),
    "labels that do not fit the head": (lambda m: {"meta.json": json.dumps({**m, "label_names": m["label_names"][:-1]})
                                                   .encode()}, "label_names but the model's head has"),
}


@pytest.mark.parametrize("problem", list(BAD_BUNDLES))
def test_a_bad_bundle_is_one_error_naming_the_file_and_what_is_wrong(bundle, tmp_path, problem):
    good = save_bundle(Bundle(config=bundle.config, unified_joints=bundle.unified_joints,  # its head.npz too, if any:
                              label_names=bundle.label_names, weights=bundle.weights, onnx=bundle.onnx,  # labels
                              head=bundle.head), tmp_path / "good.hetskel")  # are the head's classes then
    change, expected = BAD_BUNDLES[problem]
    bad = _rewrite(good, tmp_path, "bad", **change(_meta(good)))
    with pytest.raises(BundleError) as error:
        load_bundle(bad)
    assert str(bad) in str(error.value) and expected in str(error.value), str(error.value)


def test_the_node_refuses_a_bundle_whose_labels_do_not_fit_its_head_at_start(bundle, tmp_path):
    """It used to start, then die of an IndexError on the first window."""
    good = save_bundle(Bundle(config=bundle.config, unified_joints=bundle.unified_joints,  # its head.npz too, if any:
                              label_names=bundle.label_names, weights=bundle.weights, onnx=bundle.onnx,  # labels
                              head=bundle.head), tmp_path / "good.hetskel")  # are the head's classes then
    meta = _meta(good)
    bad = _rewrite(good, tmp_path, "bad", **{"meta.json": json.dumps({**meta, "label_names": meta["label_names"] +
                                                                       ["extra"]}).encode()})
    done = subprocess.run([sys.executable, "-m", "hetskel_ros.ros.recognizer_node", "--ros-args", "-p",
                           f"model:={bad}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"model bundle {bad}:" in done.stderr.strip().splitlines()[-1]


def test_runtime_input_names_match_the_export():
    from hetskel_ros.model import export

    assert (INPUT_NAMES, OUTPUT_NAMES) == (export.INPUT_NAMES, export.OUTPUT_NAMES)


# -- bad input ----------------------------------------------------------------------------------------------------
def test_bad_inputs_fail_with_the_name_of_what_is_wrong(bundle, mocap, onnxruntime_cpu):
    good = mocap_inputs(bundle, 2, "both", data=mocap)
    with pytest.raises(BackendError, match=r"lack \['has2d'\]"):
        onnxruntime_cpu.infer({k: v for k, v in good.items() if k != "has2d"})
    with pytest.raises(BackendError, match=r"'x2d' has shape \(2, 32, 30, 3\), expected \(2, 32, 30, 2\)"):
        onnxruntime_cpu.infer(dict(good, x2d=np.zeros((2, 32, 30, 3), np.float32)))
    with pytest.raises(BackendError, match=r"'t3d' holds topology index 9.*bandai_mocap"):
        onnxruntime_cpu.infer(dict(good, t3d=np.array([0, 9])))
    with pytest.raises(BackendError, match="has3d and has2d are both 0"):
        onnxruntime_cpu.infer(dict(good, has3d=np.zeros(2, np.float32), has2d=np.zeros(2, np.float32)))
    with pytest.raises(BackendError, match="unknown model inputs"):
        onnxruntime_cpu.infer(dict(good, extra=np.zeros(2)))


# -- backend selection ----------------------------------------------------------------------------------------------
def _records(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here; the fallback is shown where it is not")
def test_default_order_falls_back_from_tensorrt_to_onnxruntime_and_says_why(bundle, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    backend = load_backend(bundle)
    assert backend.name == "onnxruntime"
    warnings = _records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("inference backend tensorrt unavailable: the 'tensorrt' package is not installed")
    assert "\n" not in warnings[0] and warnings[0].endswith("trying onnxruntime")
    assert [name for name, _ in backend.fallbacks] == ["tensorrt"]
    assert "not installed" in backend.fallbacks[0][1]
    chosen = _records(caplog, logging.INFO)
    assert any(m.startswith("inference backend: onnxruntime on cpu") and "skipped tensorrt" in m for m in chosen)


def test_a_backend_that_fails_to_load_is_skipped_for_the_next(bundle, mocap, caplog, torch_cpu):
    """A corrupt graph makes ONNX Runtime fail (not merely be missing): PyTorch serves, one line says why."""
    broken = Bundle(config=bundle.config, unified_joints=bundle.unified_joints, label_names=bundle.label_names,
                    weights=bundle.weights, onnx=b"not an onnx graph", head=bundle.head)
    caplog.set_level(logging.INFO, logger=LOGGER)
    backend = load_backend(broken, order=("onnxruntime", "torch"), device="cpu")
    assert backend.name == "torch"
    (warning,) = _records(caplog, logging.WARNING)
    assert warning.startswith("inference backend onnxruntime failed: BackendError: onnxruntime could not load")
    inputs = mocap_inputs(bundle, 2, "both", data=mocap)
    assert np.abs(backend.infer(inputs)[1] - torch_cpu.infer(inputs)[1]).max() == 0.0


def test_no_working_backend_is_one_clear_error(bundle, caplog):
    no_graph = Bundle(config=bundle.config, unified_joints=bundle.unified_joints, label_names=bundle.label_names,
                      weights=bundle.weights, onnx=None)
    with pytest.raises(BackendError, match=r"no inference backend could run bundle .*onnxruntime: unavailable: "
                                           r"bundle .* holds no model.onnx"):
        load_backend(no_graph, order=("tensorrt", "onnxruntime"))
    assert _records(caplog, logging.WARNING)[-1].endswith("no backend left to try")


def test_selection_settings_are_checked(bundle):
    with pytest.raises(ValueError, match="unknown inference backend 'openvino'"):
        load_backend(bundle, order=("openvino", "onnxruntime"))
    with pytest.raises(TypeError, match=r"unknown backend option\(s\) \['thread'\]"):
        load_backend(bundle, thread=2)
    with pytest.raises(ValueError, match="precision must be one of"):
        BackendOptions(precision="int4")
    with pytest.raises(ValueError, match=r"opt_batch must lie in 1\.\.max_batch"):
        BackendOptions(max_batch=4, opt_batch=8)


# -- TensorRT engine cache (pure logic, no GPU) -----------------------------------------------------------------------
KEY = EngineKey("ab" * 32, "10.3.0", "Orin", "fp16", 32, 1)


def test_engine_key_covers_graph_tensorrt_gpu_precision_and_batch():
    assert engine_key(b"graph", "10.3.0", "Orin", "fp16", 32) == engine_key(b"graph", "10.3.0", "Orin", "fp16", 32)
    base = {"onnx": b"graph", "tensorrt_version": "10.3.0", "gpu_name": "Orin", "precision": "fp16", "max_batch": 32}
    changes = [{}, {"onnx": b"graph2"}, {"tensorrt_version": "10.4.0"}, {"gpu_name": "RTX 4090"},
               {"precision": "fp32"}, {"max_batch": 8}, {"opt_batch": 4}]
    variants = [engine_key(**{**base, **change}) for change in changes]
    assert len({k.filename for k in variants}) == len(variants)
    assert KEY.filename.startswith("abababababab-fp16-b32-") and KEY.filename.endswith(".engine")


def test_engine_cache_hits_only_for_the_same_key(tmp_path):
    cache = EngineCache(tmp_path)
    assert not cache.lookup(KEY).hit and "no cached engine for this graph" in cache.lookup(KEY).reason
    path = cache.store(KEY, b"engine bytes")
    assert path.parent == tmp_path
    assert cache.lookup(KEY).engine == b"engine bytes"
    upgraded = EngineKey(**{**KEY.to_dict(), "tensorrt_version": "10.4.0"})
    miss = cache.lookup(upgraded)
    assert not miss.hit and miss.reason == "cached engine for this graph no longer fits (tensorrt_version '10.3.0' " \
                                           "-> '10.4.0')"
    other_gpu = EngineKey(**{**KEY.to_dict(), "gpu_name": "RTX 4090", "precision": "fp32"})
    assert "gpu_name 'Orin' -> 'RTX 4090', precision 'fp16' -> 'fp32'" in cache.lookup(other_gpu).reason


def test_engine_cache_rejects_damaged_entries(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.store(KEY, b"engine bytes")
    path.write_bytes(b"engine by")  # truncated
    assert "does not match its recorded sha256" in cache.lookup(KEY).reason
    cache.store(KEY, b"engine bytes")
    cache.meta_path(KEY).write_text("{ not json")
    assert "is unreadable" in cache.lookup(KEY).reason
    cache.store(KEY, b"engine bytes")
    path.unlink()  # sidecar without engine
    assert not cache.lookup(KEY).hit


def test_engines_of_other_tensorrt_versions_are_superseded(tmp_path):
    cache = EngineCache(tmp_path)
    old = EngineKey(**{**KEY.to_dict(), "tensorrt_version": "10.0.1"})
    fp32 = EngineKey(**{**KEY.to_dict(), "precision": "fp32"})
    other_graph = EngineKey(**{**KEY.to_dict(), "onnx_sha256": "cd" * 32, "tensorrt_version": "10.0.1"})
    for key in (old, fp32, other_graph, KEY):
        cache.store(key, key.digest.encode())
    assert cache.superseded(KEY) == [cache.engine_path(old)]  # fp32 and the other graph are still usable
    cache.remove(cache.engine_path(old))
    assert {k for k, _ in cache.entries()} == {fp32, other_graph, KEY}


def test_engine_cache_location_and_fp16_availability(tmp_path, monkeypatch):
    monkeypatch.setenv("HETSKEL_ENGINE_CACHE", str(tmp_path / "engines"))
    assert default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv("HETSKEL_ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "hetskel_ros" / "engines"
    assert effective_precision("fp16", has_fp16_flag=True) == "fp16"
    assert effective_precision("fp16", has_fp16_flag=False) == "fp32"  # TensorRT 11: strong typing only
    assert effective_precision("fp32", has_fp16_flag=True) == "fp32"


# -- benchmark --------------------------------------------------------------------------------------------------------
def test_hetskel_bench_writes_results_with_machine_info(bundle, tmp_path, capsys):
    path = save_bundle(Bundle(config=bundle.config, unified_joints=bundle.unified_joints,
                              label_names=bundle.label_names, weights=bundle.weights, onnx=bundle.onnx,
                              head=bundle.head),  # the shipped bundle's head is outside its graph (robot views)
                       tmp_path / "model.hetskel")
    assert bench.main(["--bundle", str(path), "--runs", "10", "--throughput-runs", "2", "--batch", "4",
                       "--threads", "1", "--warmup", "2", "--name", "t", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    machine = report["machine"]
    assert machine["cpu"] and machine["usable_cores"] >= 1 and machine["onnxruntime"] and machine["torch"]
    measured = {r["backend"]: r for r in report["results"] if "batch1" in r}
    assert set(measured) >= {"onnxruntime", "torch"}
    for row in measured.values():
        assert row["size"] == "small" and row["threads"] == 1 and row["batch1"]["runs"] == 10
        assert 0 < row["batch1"]["p50_ms"] <= row["batch1"]["p99_ms"] and row["batch1"]["cpu_p50_ms"] > 0
        assert row["batch4"]["samples_per_s"] > 0
    (comparison,) = report["comparisons"]
    assert comparison["onnxruntime_over_torch_p50"] == pytest.approx(
        measured["onnxruntime"]["batch1"]["p50_ms"] / measured["torch"]["batch1"]["p50_ms"], abs=1e-3)
    assert "goal_met" in comparison
    if not HAS_TENSORRT:
        (skipped,) = [r for r in report["results"] if r["backend"] == "tensorrt"]
        assert "not installed" in skipped["skipped"]
    assert "onnxruntime/torch p50" in capsys.readouterr().out


def test_interleaved_timings_measure_every_call_in_round_robin_blocks():
    order: list[str] = []
    cpu: dict[str, list[float]] = {}
    times = bench.interleaved_timings({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                      runs=5, rounds=2, warmup=1, cpu=cpu)
    assert [len(t) for t in times.values()] == [5, 5] and [len(t) for t in cpu.values()] == [5, 5]
    assert "".join(order) == "ab" + "aaa" + "bbb" + "aa" + "bb"
    stats = bench.percentiles([0.001, 0.002, 0.003])
    assert stats["p50_ms"] == 2.0 and stats["runs"] == 3


# -- GPU ------------------------------------------------------------------------------------------------------------
def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "no NVIDIA GPU here (torch.cuda.is_available() is False)"


CUDA_MISSING = _cuda_reason()


@pytest.mark.gpu
@pytest.mark.skipif(CUDA_MISSING is not None, reason=str(CUDA_MISSING))
def test_torch_cuda_matches_cpu(bundle, mocap, torch_cpu):
    inputs = mocap_inputs(bundle, 8, "mixed", data=mocap)
    cuda = create_backend("torch", bundle, device="cuda")
    assert cuda.device.startswith("cuda")
    assert np.abs(cuda.infer(inputs)[1] - torch_cpu.infer(inputs)[1]).max() <= 1e-3  # TF32 matmuls may be on


@pytest.mark.gpu
@pytest.mark.skipif(CUDA_MISSING is not None, reason=str(CUDA_MISSING))
def test_onnxruntime_cuda_matches_torch(bundle, mocap, torch_cpu):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    inputs = mocap_inputs(bundle, 8, "mixed", data=mocap)
    backend = create_backend("onnxruntime", bundle, device="cuda")
    assert backend.device.startswith("cuda")
    assert np.abs(backend.infer(inputs)[1] - torch_cpu.infer(inputs)[1]).max() <= 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(CUDA_MISSING is not None, reason=str(CUDA_MISSING))
@pytest.mark.skipif(not HAS_TENSORRT, reason="tensorrt is not installed (requirements-gpu.txt)")
def test_tensorrt_engine_builds_caches_and_matches_torch(bundle, mocap, torch_cpu, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    inputs = mocap_inputs(bundle, 10, "mixed", data=mocap)
    reference = torch_cpu.infer(inputs)[1]
    fp32 = create_backend("tensorrt", bundle, precision="fp32", max_batch=4, cache_dir=tmp_path)
    assert fp32.precision == "fp32" and fp32.max_batch == 4
    assert np.abs(fp32.infer(inputs)[1] - reference).max() <= PARITY  # 10 rows: split over the 1..4 profile
    assert np.abs(fp32.infer(_rows(inputs, slice(0, 1)))[1] - reference[:1]).max() <= PARITY
    fp32.close()
    assert any("building a fp32 engine" in m for m in _records(caplog, logging.INFO))
    again = create_backend("tensorrt", bundle, precision="fp32", max_batch=4, cache_dir=tmp_path)
    assert any(m.startswith("TensorRT: loaded cached engine") for m in _records(caplog, logging.INFO))
    again.close()
    fp16 = create_backend("tensorrt", bundle, max_batch=16, cache_dir=tmp_path)
    assert np.abs(fp16.infer(inputs)[1] - reference).max() <= 2e-2
    fp16.close()
    assert len(EngineCache(tmp_path).entries()) == 2

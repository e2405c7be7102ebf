"""The ROS-free recognition pipeline (hetskel_ros.runtime.recognizer) on real mocap with real ONNX Runtime.

What a user relies on: windows are exactly the ones training made (so the shipped accuracy holds), the same messages
give the same labels every time (live node == offline bag evaluation), every ready track runs in one batched call,
post-processing does what the parameters say, resets and drops happen for the documented reasons, and memory stays
bounded whatever a publisher does. Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.),
CC BY-NC 4.0.
"""

from __future__ import annotations

import numpy as np
import pytest
from recognizer_support import mocap_sample, stand_in_bundle

from hetskel_ros.model.config import INDEX_INPUTS
from hetskel_ros.runtime import create_backend
from hetskel_ros.runtime.association import AssociationRule, Candidate, associate
from hetskel_ros.runtime.buffers import TrackBuffer
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.runtime.recognizer import UNKNOWN, InputSpec, Recognizer, RecognizerConfig
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.window import window_times

FPS = 30.0


@pytest.fixture(scope="module")
def bundle():
    return stand_in_bundle()


@pytest.fixture(scope="module")
def backend(bundle):
    return create_backend("onnxruntime", bundle, device="cpu", threads=1)


@pytest.fixture(scope="module")
def mocap():
    return mocap_sample()


@pytest.fixture(scope="module")
def unified_clips(mocap):
    topology = load_topology(mocap.topology)
    return [topology.to_unified(seq) for seq in mocap.sequences]


def observations(unified_clip, track_id: int = 1, start: float = 0.0, topology: str = "bandai_mocap",
                 fps: float = FPS):
    positions, mask = unified_clip
    return [Observation(track_id, start + k / fps, topology, 3, positions[k], mask[k], "world")
            for k in range(len(positions))]


def feed(recognizer: Recognizer, stream, input_name: str = "mocap", now_offset: float = 0.0):
    """Observe one observation at a time (a message each) and step after each, as the node does."""
    decisions = []
    for obs in stream:
        recognizer.observe(input_name, [obs], obs.stamp + now_offset)
        decisions += recognizer.step(obs.stamp + now_offset)
    return decisions


def make(bundle, backend, inputs=("mocap",), **config) -> Recognizer:
    specs = [spec if isinstance(spec, InputSpec) else InputSpec(spec) for spec in inputs]
    return Recognizer(bundle, backend, specs, RecognizerConfig(**config))


# -- windows are training's windows ----------------------------------------------------------------------------
def test_windows_are_the_windows_training_makes(bundle, backend, mocap):
    """Scores of each live window equal the model's scores on training's own window of the same times."""
    from training.features import window_inputs
    from training.views import ViewMaker, clips_from_sequences

    skeleton = load_unified()
    index = 9  # a 210-frame clip: several full windows
    clip = clips_from_sequences(mocap.subset([index]), load_topology(mocap.topology), skeleton)[0]
    recognizer = make(bundle, backend, smoothing=0.0, top_k=len(bundle.label_names), threshold=0.0, stagger=False)
    topology = load_topology(mocap.topology)
    decisions = feed(recognizer, observations(topology.to_unified(mocap.sequences[index]), track_id=4))
    assert len(decisions) >= 5
    maker = ViewMaker(skeleton, bundle.config.window, bundle.config.fps)
    topology_index = {name: i for i, name in enumerate(bundle.config.topologies)}
    rows = [window_inputs(maker, clip, window_times(d.stamp, bundle.config.window, bundle.config.fps), "3d",
                          topology_index, np.random.default_rng(0)) for d in decisions]
    inputs = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
    inputs = {k: v.astype(np.int64 if k in INDEX_INPUTS else np.float32) for k, v in inputs.items()}
    _, expected = backend.infer(inputs)
    for decision, scores in zip(decisions, expected, strict=True):
        live = np.zeros(len(bundle.label_names))
        for h in decision.hypotheses:
            live[h.class_id] = h.score
        assert np.abs(live - scores).max() < 1e-5
        assert decision.window_start == pytest.approx(decision.stamp - (bundle.config.window - 1) / bundle.config.fps)


def test_first_window_after_min_fill_then_every_stride(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, window_stride_s=0.5, min_window_fill=0.5, stagger=False)
    decisions = feed(recognizer, observations(unified_clips[9]))
    span = (bundle.config.window - 1) / bundle.config.fps
    stamps = np.array([d.stamp for d in decisions])
    assert stamps[0] == pytest.approx(np.ceil(0.5 * span * FPS - 1e-6) / FPS)
    assert np.allclose(np.diff(stamps), 0.5, atol=1.0 / FPS + 1e-9)
    assert {d.source for d in decisions} == {"mocap"} and {d.track_id for d in decisions} == {1}


# -- determinism and batching -----------------------------------------------------------------------------------
def test_same_messages_give_the_same_decisions(bundle, backend, unified_clips):
    """The bag evaluation replays messages offline and must get what the live node published."""
    streams = [observations(unified_clips[i], track_id=i + 1, start=0.013 * i) for i in (3, 8, 12)]
    merged = sorted((o for s in streams for o in s), key=lambda o: (o.stamp, o.track_id))
    first = feed(make(bundle, backend), merged)
    second = feed(make(bundle, backend), merged)
    assert len(first) > 10
    assert first == second


def test_every_ready_track_runs_in_one_batched_call(bundle, backend, unified_clips):
    """Eight people seen in the same frames (one SkeletonArray each frame) fall due together without stagger."""
    recognizer = make(bundle, backend, stagger=False, max_tracks=8)
    frames = min(len(unified_clips[i][0]) for i in range(8, 16))
    for k in range(frames):
        stamp = k / FPS
        people = [Observation(i + 1, stamp, "bandai_mocap", 3, unified_clips[8 + i][0][k], unified_clips[8 + i][1][k])
                  for i in range(8)]
        recognizer.observe("mocap", people, stamp)
        recognizer.step(stamp)
    assert set(recognizer.batch_sizes) == {8}
    assert recognizer.events["windows"] == 8 * recognizer.events["batches"]


def test_stagger_spreads_people_who_appear_together(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, stagger=True, max_tracks=8)
    frames = 120
    for k in range(frames):
        stamp = k / FPS
        people = [Observation(i + 1, stamp, "bandai_mocap", 3, unified_clips[9][0][k], unified_clips[9][1][k])
                  for i in range(8)]
        recognizer.observe("mocap", people, stamp)
        recognizer.step(stamp)
    assert max(recognizer.batch_sizes) < 8  # not all at once
    assert recognizer.events["windows"] >= 8 * 3


# -- post-processing ----------------------------------------------------------------------------------------------
def test_smoothing_top_k_and_unknown(bundle, backend, unified_clips):
    stream = observations(unified_clips[9])
    raw = feed(make(bundle, backend, smoothing=0.0, top_k=len(bundle.label_names), threshold=0.0), stream)
    alpha = 0.7
    smoothed = feed(make(bundle, backend, smoothing=alpha, top_k=2, threshold=1.0), stream)
    assert len(raw) == len(smoothed)
    expected = None
    for r, s in zip(raw, smoothed, strict=True):
        scores = np.zeros(len(bundle.label_names))
        for h in r.hypotheses:
            scores[h.class_id] = h.score
        expected = scores if expected is None else alpha * expected + (1 - alpha) * scores
        assert [h.class_id for h in s.hypotheses] == list(np.argsort(-expected, kind="stable")[:2])
        assert s.score == pytest.approx(expected.max(), abs=1e-6)
        assert s.label == UNKNOWN  # threshold 1.0: never sure enough
        assert s.hypotheses[0].label == bundle.label_names[s.hypotheses[0].class_id]
    labelled = feed(make(bundle, backend, threshold=0.0), stream)
    assert all(d.label == d.hypotheses[0].label for d in labelled)


# -- resets, expiry, limits -------------------------------------------------------------------------------------
def test_repeated_and_backward_stamps_reset_the_track(bundle, backend, unified_clips):
    recognizer = make(bundle, backend)
    stream = observations(unified_clips[9])
    feed(recognizer, stream[:40])
    recognizer.observe("mocap", [stream[39]], 2.0)  # same stamp again
    assert recognizer.events["track_reset_repeat"] == 1
    feed(recognizer, stream[40:60])
    recognizer.observe("mocap", [stream[50]], 2.1)  # 0.3 s back: less than time_jump_s
    assert recognizer.events["track_reset_backwards"] == 1
    assert recognizer.events["reset_all_time_jump"] == 0
    assert recognizer.buffered_frames() == 1  # the track started over from that frame


def test_time_jump_back_resets_every_track(bundle, backend, unified_clips):
    """A bag played in a loop: stamps of one input jump back by more than time_jump_s."""
    recognizer = make(bundle, backend, max_tracks=4)
    a, b = observations(unified_clips[9], 1), observations(unified_clips[10], 2)
    for k in range(90):
        recognizer.observe("mocap", [a[k], b[k]], a[k].stamp)
        recognizer.step(a[k].stamp)
    assert recognizer.active_tracks() == 2
    recognizer.observe("mocap", [a[0]], 3.1)  # back to the start of the bag
    assert recognizer.events["reset_all_time_jump"] == 1
    assert recognizer.track_keys() == [("mocap", 1)]  # only the new observation's track


def test_clock_going_back_resets_every_track(bundle, backend, unified_clips):
    recognizer = make(bundle, backend)
    feed(recognizer, observations(unified_clips[9])[:30], now_offset=100.0)
    recognizer.step(50.0)  # use_sim_time and a looping bag: /clock jumps back
    assert recognizer.events["reset_all_clock_back"] == 1 and recognizer.active_tracks() == 0


def test_stale_tracks_are_freed_after_the_timeout(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, track_timeout_s=1.0, max_tracks=2)
    feed(recognizer, observations(unified_clips[9], 1)[:10])
    feed(recognizer, observations(unified_clips[10], 2)[:10])
    assert recognizer.active_tracks() == 2
    recognizer.observe("mocap", observations(unified_clips[11], 3)[:1], 0.4)
    assert recognizer.counters["mocap"].drops["too_many_tracks"] == 1  # max_tracks 2
    recognizer.step(0.3 + 0.9)
    assert recognizer.active_tracks() == 2
    recognizer.step(0.3 + 1.1)
    assert recognizer.active_tracks() == 0 and recognizer.events["tracks_freed"] == 2


def test_a_gap_longer_than_the_timeout_starts_the_track_over(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, track_timeout_s=1.0)
    stream = observations(unified_clips[9])
    feed(recognizer, stream[:20])
    late = stream[20]
    feed(recognizer, [Observation(1, late.stamp + 5.0, late.topology, 3, late.positions, late.mask)])
    assert recognizer.events["track_reset_gap"] == 1 and recognizer.buffered_frames() == 1


def test_ten_times_the_configured_rate_keeps_memory_bounded(bundle, backend, unified_clips):
    """300 Hz into an input configured for 30 Hz: frames are thinned (over_rate) and buffers stay bounded."""
    recognizer = make(bundle, backend, inputs=[InputSpec("mocap", rate_hz=30.0)], max_tracks=2)
    positions, mask = unified_clips[9]
    capacity = recognizer.buffer_capacity("mocap")
    sizes = []
    for k in range(3000):  # 10 s at 300 Hz
        stamp = k / 300.0
        frame = min(int(stamp * FPS), len(positions) - 1)
        recognizer.observe("mocap", [Observation(1, stamp, "bandai_mocap", 3, positions[frame], mask[frame])], stamp)
        recognizer.step(stamp)
        sizes.append(recognizer.buffered_frames())
    drops = recognizer.counters["mocap"].drops["over_rate"]
    assert drops >= 3000 * 0.75  # at most 2x the configured rate is kept
    assert max(sizes) <= capacity
    assert max(sizes[1000:]) == max(sizes[2000:])  # flat, not growing
    assert recognizer.buffer_bytes() == TrackBuffer(capacity, 30, 3).nbytes
    assert recognizer.events["windows"] >= 15  # and it still recognises


def test_only_one_untracked_person_is_followed(bundle, backend, unified_clips):
    recognizer = make(bundle, backend)
    a, b = observations(unified_clips[9], track_id=0), observations(unified_clips[10], track_id=0)
    moved = [Observation(0, o.stamp, o.topology, 3, o.positions + np.float32(3.0), o.mask) for o in b]
    for k in range(30):
        recognizer.observe("mocap", [moved[k], a[k]] if k % 2 else [a[k], moved[k]], a[k].stamp)
    assert recognizer.counters["mocap"].drops["untracked_extra"] == 30
    assert recognizer.events["track_reset_topology"] == 0 and recognizer.buffered_frames() == 30
    # followed by nearness: the kept frames are all person a's (near the origin), never the one 3 m away
    frame = recognizer.latest_frames()[0]
    assert np.abs(frame.positions[frame.mask] - a[29].positions[a[29].mask]).max() < 1e-6


def test_malformed_observations_are_dropped_not_raised(bundle, backend, unified_clips):
    recognizer = make(bundle, backend)
    good = observations(unified_clips[9])[0]
    bad = [Observation(1, 0.0, "bandai_mocap", 3, good.positions[:5], good.mask),  # wrong joint count
           Observation(1, float("nan"), "bandai_mocap", 3, good.positions, good.mask),
           Observation(1, 0.0, "bandai_mocap", 3, np.full_like(good.positions, np.nan), good.mask),
           Observation(1, 0.0, "bandai_mocap", 3, good.positions, np.zeros_like(good.mask))]
    recognizer.observe("mocap", bad, 0.0)
    assert recognizer.counters["mocap"].drops["malformed"] == 4 and recognizer.active_tracks() == 0
    recognizer.observe("mocap", [Observation(1, 0.0, "no_such_topology", 3, good.positions, good.mask)], 0.0)
    assert recognizer.counters["mocap"].drops["unknown_topology"] == 1


# -- configuration --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value"), [("threshold", 1.5), ("top_k", 0), ("smoothing", 1.0),
                                              ("window_stride_s", 0.0), ("max_tracks", 0)])
def test_bad_settings_name_the_parameter(field, value):
    with pytest.raises(ValueError, match=f"'{field}'"):
        RecognizerConfig(**{field: value})


def test_a_view_group_needs_one_3d_and_one_2d_input(bundle, backend):
    with pytest.raises(ValueError, match="view_group 'cam'"):
        make(bundle, backend, inputs=[InputSpec("a", view_group="cam", dims=3), InputSpec("b", view_group="cam",
                                                                                         dims=3)])
    with pytest.raises(ValueError, match=r"fusion\.projection"):
        Recognizer(bundle, backend, [InputSpec("a", view_group="cam", dims=3), InputSpec("b", view_group="cam",
                                                                                         dims=2)],
                   association=AssociationRule("nearest_root"))


# -- fusion ---------------------------------------------------------------------------------------------------
def _camera_views(unified_clip, track_id: int, offset_x: float = 0.0):
    """The 3D clip placed 3 m in front of a pinhole camera (optical frame: x right, y down, z forward), and the
    2D pixels that camera sees, as coco17 native arrays. Returns (3D observations, 2D observations)."""
    positions, mask = unified_clip
    skeleton = load_unified()
    coco = load_topology("coco17")
    root = positions[0, skeleton.root_index].copy()
    in_camera = (positions - root) * np.array([1.0, -1.0, 1.0], np.float32) + np.array([offset_x, 0.0, 4.0],
                                                                                        np.float32)
    in_camera[~mask] = (0.0, 0.0, 1.0)  # not drawn (masked below); keeps the division finite
    fx = fy = 600.0
    cx, cy = 320.0, 240.0
    pixels = np.stack([fx * in_camera[..., 0] / in_camera[..., 2] + cx, fy * in_camera[..., 1] / in_camera[..., 2] +
                       cy], axis=-1)
    native = np.full((len(positions), coco.num_joints, 2), np.nan, np.float32)
    for j, name in enumerate(coco.joints):
        target = coco.canonical.get(name)
        if target in skeleton.names and mask[0, skeleton.index(target)]:
            native[:, j] = pixels[:, skeleton.index(target)]
    unified2d, mask2d = coco.to_unified(native)
    three = [Observation(track_id, k / FPS, "azure_kinect", 3, in_camera[k], mask[k], "camera", up="-y")
             for k in range(len(positions))]
    two = [Observation(track_id, k / FPS, "coco17", 2, unified2d[k], mask2d[k], "camera")
           for k in range(len(positions))]
    return three, two, (fx, fy, cx, cy)


@pytest.mark.parametrize("rule", ["track_id", "nearest_root"])
def test_views_of_one_person_are_fused(bundle, backend, unified_clips, rule):
    # two people waving in place (real mocap), 2 m apart; the 3D sensor sees only the first
    three, two, projection = _camera_views(unified_clips[14], track_id=5)
    _, two_other, _ = _camera_views(unified_clips[16], track_id=9 if rule == "nearest_root" else 5, offset_x=2.0)
    frames = min(len(three), len(two_other))
    if rule == "track_id":  # the second 2D person has its own id: no 3D partner
        two_other = [Observation(6, o.stamp, o.topology, 2, o.positions, o.mask) for o in two_other]
    if rule == "nearest_root":  # and the tracker of the 2D view numbers people differently
        two = [Observation(3, o.stamp, o.topology, 2, o.positions, o.mask) for o in two]
    inputs = [InputSpec("depth", view_group="cam", dims=3), InputSpec("rgb", view_group="cam", dims=2)]
    recognizer = Recognizer(bundle, backend, inputs, RecognizerConfig(stagger=False, max_tracks=8),
                            AssociationRule(rule, projection=projection))
    decisions = []
    for k in range(frames):
        recognizer.observe("depth", [three[k]], three[k].stamp)
        recognizer.observe("rgb", [two[k], two_other[k]], two[k].stamp)
        decisions += recognizer.step(three[k].stamp)
    fused = [d for d in decisions if d.source == "fused"]
    alone = [d for d in decisions if d.source != "fused"]
    assert fused and all(d.track_id == 5 and d.input == "depth" for d in fused)
    assert recognizer.events["windows_fused"] == len(fused)
    # the person only the 2D camera sees is classified from 2D alone; the fused person never from one view
    assert alone and {(d.source, d.track_id) for d in alone} == {("rgb", two_other[0].track_id)}


def test_association_rules():
    rule = AssociationRule("nearest_root", max_distance_m=0.5)
    a = [Candidate(1, np.array([0.0, 0.0, 3.0]), 3), Candidate(2, np.array([1.0, 0.0, 3.0]), 3)]
    b = [Candidate(7, np.array([1.1, 0.0, 3.0]), 3), Candidate(8, np.array([0.05, 0.0, 3.0]), 3),
         Candidate(9, None, 3)]
    assert associate(a, b, rule) == {1: 8, 2: 7}
    assert associate(a, [Candidate(7, np.array([5.0, 0.0, 3.0]), 3)], rule) == {}  # beyond the gate
    assert associate(a, b, AssociationRule("track_id")) == {}
    assert associate(a, [Candidate(2, None, 2)], AssociationRule("track_id")) == {2: 2}
    projected = AssociationRule("nearest_root", projection=(600.0, 600.0, 320.0, 240.0))
    pixel = Candidate(4, np.array([320.0 + 200.0, 240.0]), 2)  # x = 1 m at 3 m depth
    assert associate(a, [pixel], projected) == {2: 4}

"""The ROS-free recognition pipeline (hetskel_ros.runtime.recognizer) on real mocap with real ONNX Runtime.

What a user relies on: windows are exactly the ones training made (so the shipped accuracy holds), the same messages
give the same labels every time (live node == offline bag evaluation), every ready track runs in one batched call,
post-processing does what the parameters say, resets and drops happen for the documented reasons, and memory stays
bounded whatever a publisher does. Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.),
CC BY-NC 4.0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from recognizer_support import mocap_sample, stand_in_bundle

from hetskel_ros.model.config import INDEX_INPUTS
from hetskel_ros.runtime import create_backend
from hetskel_ros.runtime.association import AssociationRule, Candidate, associate
from hetskel_ros.runtime.buffers import TrackBuffer
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.runtime.recognizer import GONE, UNKNOWN, InputSpec, Recognizer, RecognizerConfig
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
    labelled = feed(make(bundle, backend, threshold=0.0, confirm_windows=1), stream)
    assert all(d.label == d.hypotheses[0].label for d in labelled)


def test_a_confident_change_of_action_restarts_the_smoothing_and_labels_carry_events(bundle, backend, unified_clips):
    """Two real clips of different actions one after the other (the mocap sample's wave-both-hands, then walk)."""
    first, second = unified_clips[14], unified_clips[8]
    stream = observations(first) + observations(second, start=len(first[0]) / FPS)
    raw = feed(make(bundle, backend, smoothing=0.0, top_k=len(bundle.label_names), threshold=0.0), stream)
    threshold = float(np.median([r.score for r in raw]))  # the stand-in bundle's scores: half the windows confident
    restarted = feed(make(bundle, backend, smoothing=0.9, top_k=len(bundle.label_names), threshold=threshold,
                          restart_on_change=True), stream)
    expected, restarts = None, 0
    for r, d in zip(raw, restarted, strict=True):
        scores = np.zeros(len(bundle.label_names))
        for h in r.hypotheses:
            scores[h.class_id] = h.score
        if expected is None or (scores.max() >= threshold and scores.argmax() != expected.argmax()):
            restarts += expected is not None
            expected = scores
        else:
            expected = 0.9 * expected + 0.1 * scores
        assert d.hypotheses[0].class_id == int(expected.argmax())
    assert restarts >= 1
    # events: a started action is the window's label and new; an ended one was the label before; no other changes
    previous, events = "", 0
    for d in restarted:
        if d.started:
            assert d.label not in ("idle", "unknown") and (d.label != previous or d.ended == previous)
        elif d.label not in ("idle", "unknown"):
            assert d.label == previous  # an action label without a start goes on
        if d.ended:
            assert d.ended == previous
        events += d.started + bool(d.ended)
        previous = d.label
    assert events >= 2


# -- resets, expiry, limits -------------------------------------------------------------------------------------
def test_a_repeated_stamp_is_dropped_and_a_backward_one_resets_the_track(bundle, backend, unified_clips):
    recognizer = make(bundle, backend)
    stream = observations(unified_clips[9])
    feed(recognizer, stream[:40])
    recognizer.observe("mocap", [stream[39]], 2.0)  # same stamp again
    assert recognizer.counters["mocap"].drops["duplicate_stamp"] == 1 and recognizer.buffered_frames() == 40
    feed(recognizer, stream[40:60])
    recognizer.observe("mocap", [stream[50]], 2.1)  # 0.3 s back: less than time_jump_s
    assert recognizer.events["track_reset_backwards"] == 1
    assert recognizer.events["reset_input_time_jump"] == 0
    assert recognizer.buffered_frames() == 1  # the track started over from that frame


def test_a_driver_that_publishes_every_frame_twice_gets_the_same_labels(bundle, backend, unified_clips):
    stream = observations(unified_clips[9])
    clean = feed(make(bundle, backend), stream)
    recognizer = make(bundle, backend)
    twice = feed(recognizer, [o for obs in stream for o in (obs, obs)])
    assert len(clean) >= 5 and twice == clean
    assert recognizer.counters["mocap"].drops["duplicate_stamp"] == len(stream)
    assert not any(name.startswith("track_reset") for name in recognizer.events)


def test_all_people_of_an_input_jumping_back_together_reset_that_input_only(bundle, backend, unified_clips):
    """A source restarted (or a bag looped on one input): every person's stamps jump back by more than time_jump_s;
    it takes two messages to tell that from one bad stamp, and the other input keeps its people."""
    recognizer = make(bundle, backend, inputs=("mocap", "other"), max_tracks=4)
    a, b = observations(unified_clips[9], 1), observations(unified_clips[10], 2)
    for k in range(90):
        recognizer.observe("mocap", [a[k], b[k]], a[k].stamp)
        recognizer.observe("other", [a[k]], a[k].stamp)
        recognizer.step(a[k].stamp)
    assert recognizer.active_tracks() == 3
    recognizer.observe("mocap", [a[0]], 3.1)  # back to the start of the bag: held until the next message
    assert recognizer.events["reset_input_time_jump"] == 0 and recognizer.active_tracks() == 3
    recognizer.observe("mocap", [a[1]], 3.13)
    assert recognizer.events["reset_input_time_jump"] == 1
    assert sorted(recognizer.track_keys()) == [("mocap", 1), ("other", 1)]
    assert recognizer.counters["mocap"].observations == 2 * 90 + 2  # both messages of the jump are kept
    assert sum(recognizer.counters["mocap"].drops.values()) == 0


BAD_STAMPS = {"zero": lambda stamp: 0.0, "negative": lambda stamp: -5.0, "far_future": lambda stamp: stamp + 1e6,
              "two_seconds_late": lambda stamp: stamp - 2.0}


@pytest.mark.parametrize("in_the_same_message", [False, True])
@pytest.mark.parametrize("pattern", list(BAD_STAMPS))
def test_a_lone_bad_stamp_every_third_of_a_second_changes_nothing_for_the_others(
        bundle, backend, unified_clips, pattern, in_the_same_message):
    """The silent stall of issue 19: one bad stamp used to reset everyone, so nobody ever got a label."""
    a, b = observations(unified_clips[9], 1), observations(unified_clips[10], 2)
    frames = min(len(a), len(b))

    def run(bad: bool) -> tuple[list, Recognizer]:
        recognizer = make(bundle, backend, max_tracks=4)
        decisions = []
        for k in range(frames):
            now = a[k].stamp
            people = [a[k], b[k]]
            if bad and k % 10 == 5 and k > 40:  # from 1.5 s on: more than time_jump_s behind
                wrong = Observation(7, BAD_STAMPS[pattern](now), "bandai_mocap", 3, a[k].positions, a[k].mask)
                if in_the_same_message:
                    people.append(wrong)
                else:
                    recognizer.observe("mocap", [wrong], now)
            recognizer.observe("mocap", people, now)
            decisions += recognizer.step(now)
        return decisions, recognizer

    clean, _ = run(False)
    attacked, recognizer = run(True)
    assert len(clean) >= 10 and attacked == clean
    reason = "future_stamp" if pattern == "far_future" else "stale_stamp"
    assert dict(recognizer.counters["mocap"].drops) == {reason: len(range(45, frames, 10))}
    assert recognizer.events["reset_input_time_jump"] == 0 and recognizer._newest["mocap"] == a[frames - 1].stamp


def _with_joint(obs: Observation, joint: int, value: float, axis: int | None = None) -> Observation:
    positions = obs.positions.copy()
    positions[joint, slice(None) if axis is None else axis] = value
    return dataclasses.replace(obs, positions=positions)


def test_one_absurd_joint_is_out_of_range_and_never_poisons_the_track(bundle, backend, unified_clips):
    """A joint at 1e30 is finite; it used to overflow normalisation and leave NaN scores in the smoothing state."""
    stream = observations(unified_clips[9])
    hand = load_unified().index("left_wrist")
    stream[40] = _with_joint(stream[40], hand, 1e30)
    recognizer = make(bundle, backend, threshold=0.0, confirm_windows=1)
    decisions = feed(recognizer, stream)
    assert dict(recognizer.counters["mocap"].drops) == {"out_of_range": 1}
    assert len(decisions) >= 5 and all(np.isfinite(d.score) and d.label != UNKNOWN for d in decisions)
    assert recognizer.events["windows_non_finite"] == 0


def test_limits_are_relative_to_the_skeleton_not_to_the_origin(bundle, backend, unified_clips):
    """A robot reports in its odometry frame, mocap in a world frame: far from the origin is no fault."""
    far_away = [dataclasses.replace(o, positions=o.positions + np.float32(5000.0)) for o in
                observations(unified_clips[9])]
    recognizer = make(bundle, backend)
    assert len(feed(recognizer, far_away)) >= 5 and not recognizer.counters["mocap"].drops
    reach = load_topology("bandai_mocap").limits.max_reach
    too_long = _with_joint(far_away[-1], load_unified().index("left_wrist"), 5000.0 + 1.5 * reach)
    too_long = dataclasses.replace(too_long, stamp=too_long.stamp + 1 / FPS)
    recognizer.observe("mocap", [too_long], too_long.stamp)
    assert recognizer.counters["mocap"].drops["out_of_range"] == 1


def test_2d_joints_are_bounded_by_the_image_when_its_size_is_known(bundle, backend, unified_clips):
    _, two, _ = _camera_views(unified_clips[14], track_id=5)
    recognizer = make(bundle, backend, inputs=[InputSpec("rgb", dims=2)])
    hand = load_unified().index("left_wrist")
    margin = load_topology("coco17").limits.image_margin
    x = 0
    inside = dataclasses.replace(_with_joint(two[0], hand, 640 * (1 + margin) - 1, x), image_size=(640, 480))
    outside = dataclasses.replace(_with_joint(two[1], hand, 640 * (1 + margin) + 1, x), image_size=(640, 480))
    unknown_size = _with_joint(two[2], hand, 640 * (1 + margin) + 1, x)  # no image size: the pixel limits
    for obs in (inside, outside, unknown_size):
        recognizer.observe("rgb", [obs], obs.stamp)
    assert dict(recognizer.counters["rgb"].drops) == {"out_of_range": 1}
    assert recognizer.counters["rgb"].observations == 2


def test_a_window_with_non_finite_scores_never_reaches_the_smoothing(bundle, backend, unified_clips, tmp_path):
    """The last guard, for a topology file without limits: such a window is dropped and counted, the person's next
    windows are clean."""
    topology = yaml.safe_load(load_topology("bandai_mocap").path.read_text())
    del topology["limits"]
    topology["name"] = "unbounded"
    path = tmp_path / "unbounded.yaml"
    path.write_text(yaml.safe_dump(topology))
    stream = observations(unified_clips[9], topology=str(path))
    clean = feed(make(bundle, backend), stream)
    stream[40] = _with_joint(stream[40], load_unified().index("left_wrist"), 1e30)
    recognizer = make(bundle, backend)
    with np.errstate(over="ignore", invalid="ignore"):
        decisions = feed(recognizer, stream)
    dropped = recognizer.events["windows_non_finite"]
    assert dropped >= 1 and len(decisions) == len(clean) - dropped
    assert all(np.isfinite(d.score) for d in decisions)
    assert decisions[-1].score == pytest.approx(clean[-1].score, abs=0.05)  # the smoothing forgot nothing bad


def test_a_flood_of_new_ids_on_one_input_never_locks_out_another(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, inputs=("crowd", "door"), max_tracks=3)
    positions, mask = unified_clips[9]
    recognizer.observe("crowd", [Observation(i, 0.0, "bandai_mocap", 3, positions[0], mask[0])
                                 for i in range(1, 11)], 0.0)
    recognizer.observe("door", [Observation(1, 0.0, "bandai_mocap", 3, positions[0], mask[0])], 0.0)
    assert recognizer.active_tracks("crowd") == 3 and recognizer.active_tracks("door") == 1
    assert recognizer.counters["crowd"].drops["too_many_tracks"] == 7
    assert not recognizer.counters["door"].drops


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


def test_a_person_who_leaves_before_the_first_window_still_gets_one_label(bundle, backend, unified_clips):
    """A 0.6 s visit (the first window is due after half a 2 s window): one window at its last frame, when it is
    freed, padded with its first frame as training pads short clips; never silence."""
    recognizer = make(bundle, backend, track_timeout_s=1.0, stagger=False)
    visit = observations(unified_clips[9], 1)[:18]
    assert feed(recognizer, visit) == []
    decisions = recognizer.step(visit[-1].stamp + 1.1)
    assert len(decisions) == 1 and decisions[0].stamp == pytest.approx(visit[-1].stamp)
    assert recognizer.events["windows_at_track_end"] == 1 and recognizer.active_tracks() == 0
    assert not recognizer._smoothed and not recognizer._label_states  # a freed track leaves no state behind
    long = make(bundle, backend, track_timeout_s=1.0, stagger=False)
    feed(long, observations(unified_clips[9], 1)[:60])
    assert [d.label for d in long.step(60 / FPS + 1.1)] == [GONE] and long.events["windows_at_track_end"] == 0


def test_a_labelled_person_who_leaves_gets_gone_which_ends_the_action_never_idle(bundle, backend, unified_clips):
    """No person is not idle: the track's last decision says "gone" and ends the action going on; one that never
    got a label (freed before any window) gets none; a track restarting on the same person (a gap) is not gone."""
    recognizer = make(bundle, backend, track_timeout_s=1.0, stagger=False, threshold=0.0, release_threshold=0.0)
    visit = observations(unified_clips[9], 4)[:60]
    decisions = feed(recognizer, visit)
    assert decisions and decisions[-1].label in bundle.label_names  # an action is going on (threshold 0)
    assert recognizer.step(visit[-1].stamp + 0.9) == []  # within the timeout: still there
    gone = recognizer.step(visit[-1].stamp + 1.1)
    assert len(gone) == 1
    last = gone[0]
    assert (last.label, last.track_id, last.source, last.started) == (GONE, 4, "mocap", False)
    assert last.ended == decisions[-1].label and last.stamp == pytest.approx(visit[-1].stamp)
    assert last.hypotheses == () and recognizer.events["tracks_gone"] == 1
    assert recognizer.step(visit[-1].stamp + 5.0) == []  # said once
    restarted = make(bundle, backend, track_timeout_s=1.0)
    stream = observations(unified_clips[9])
    feed(restarted, stream[:40])
    feed(restarted, [Observation(1, o.stamp - 0.5, o.topology, 3, o.positions, o.mask) for o in stream[40:42]])
    assert restarted.events["track_reset_backwards"] == 1 and restarted.events["tracks_gone"] == 0


def test_a_gap_longer_than_the_timeout_starts_the_track_over(bundle, backend, unified_clips):
    recognizer = make(bundle, backend, track_timeout_s=1.0)
    stream = observations(unified_clips[9])
    feed(recognizer, stream[:20])
    back = [Observation(1, o.stamp + 5.0, o.topology, 3, o.positions, o.mask) for o in stream[20:22]]
    arrival = stream[19].stamp  # the stamps jump, the arrival clock does not (a bag with a gap, played fast)
    recognizer.observe("mocap", back[:1], arrival)  # everyone jumped 5 s: held until the next message confirms
    assert recognizer.buffered_frames() == 20
    recognizer.observe("mocap", back[1:], arrival + 0.03)
    assert recognizer.events["track_reset_gap"] == 1 and recognizer.buffered_frames() == 2


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


def test_a_model_swap_keeps_tracks_remaps_the_smoothing_by_label_and_ends_a_vanished_action(bundle, backend,
                                                                                           unified_clips):
    """Recognizer.swap_model (what the node's `model` parameter runs), with a taught head outside the graph."""
    from hetskel_ros.model.head import LinearHead

    shared = bundle.label_names[8]
    rng = np.random.default_rng(0)
    taught = dataclasses.replace(bundle, label_names=[shared, "come-here", "stop"], path=None,
                                 head=LinearHead(rng.normal(size=(3, bundle.config.feature_dim)), np.zeros(3)))
    taught_backend = create_backend("onnxruntime", taught, device="cpu", threads=1)
    recognizer = make(bundle, backend, threshold=0.0, release_threshold=0.0, stagger=False)
    stream = observations(unified_clips[16])
    before = feed(recognizer, stream[:90])
    key = ("mocap", 1)
    old_scores, old_action = recognizer._smoothed[key].copy(), recognizer._label_states[key].action
    assert old_action and old_action in bundle.label_names
    assert recognizer.swap_model(taught, taught_backend, stream[89].stamp) == []  # nothing was pending
    assert recognizer.track_keys() == [key] and recognizer.labels == taught.label_names
    remapped = recognizer._smoothed[key]
    assert remapped[0] == old_scores[bundle.label_names.index(shared)] and remapped[1] == remapped[2] == 0.0
    after = feed(recognizer, stream[90:])
    assert after and all({h.label for h in d.hypotheses} <= set(taught.label_names) for d in after)
    assert sum(abs(h.score - 1 / 3) for h in after[0].hypotheses) > 0  # scores of the taught head, not the graph's
    if old_action != shared:
        assert after[0].ended == old_action  # the action the new vocabulary lacks ended with the next window
    stamps = [d.stamp for d in before + after]
    assert np.allclose(np.diff(stamps), 0.5, atol=1 / FPS)  # no window lost or repeated across the swap
    assert recognizer.events["model_swaps"] == 1

"""The recognition pipeline shared by the ROS node and offline bag evaluation (no ROS imports).

    recognizer = Recognizer(bundle, backend, inputs=[InputSpec("depth")], config=RecognizerConfig())
    recognizer.observe("depth", observations, now)     # per message: buffer, and cut the windows now due
    decisions = recognizer.step(now)                    # free stale tracks, ONE batched inference, post-process

Per (input, track) a bounded buffer holds unified skeletons. Windows are scheduled by the data's own stamps: a
track's first window ends at the first stamp at least ``min_window_fill`` of a window span after the track began,
then one every ``window_stride_s``, on a grid anchored at the track's first stamp (shifted by a fixed fraction of
the stride per track_id when ``stagger`` is on, so people who appear together do not all fall due on the same
frame). A window is cut the moment its last frame arrives, exactly as training cuts them (training/views.py and
training/features.py): ``window_times`` ending at that frame's stamp, ``interpolate_frames``, ``normalize`` with the
topology's up axis (yaw-aligned for 3D as the bundle says, never for 2D). So the windows, and hence the labels,
depend only on the messages, never on when a timer fired: the live node and an offline replay agree.

Scores are the model's softmax probabilities, smoothed per (source, track) by an exponential moving average over
windows, then cut to the top-k hypotheses. The label (hetskel_ros.runtime.labelling) is an action, "idle" (the person
barely moves) or "unknown" (no action confident), with start/end events under hysteresis: an action starts at
``threshold`` and lasts while its smoothed score stays >= ``release_threshold``. A new person's windows start after
``min_window_fill`` of a window: early windows are padded with the first frame, and a label comes as soon as the
smoothed score is confident (a small fill, e.g. 0.25, labels short tracks; the first window never waits for more).

Stamps: a frame whose stamp repeats its track's last is dropped ("duplicate_stamp"); a track whose stamps go back
a little (less than ``time_jump_s``), or jump ahead by more than the track timeout, starts over. A stamp more than
``time_jump_s`` away from the newest of its input is judged by the message it came in: among people on time it is a
lone bad stamp, dropped ("stale_stamp" behind, "future_stamp" ahead; it never becomes the input's newest); when every
person of a message jumped, the message is held until the input's next message, which either jumps with it (then
the input really jumped: a jump back resets every track of that input, "reset_input_time_jump", and both messages
are used) or does not (then the held one is dropped as lone). An input's first message has no newest to be judged
against and is taken as it is. The clock ``now`` going back by more than
``time_jump_s`` (a bag replayed in a loop under use_sim_time) resets every track of every input. Tracks unseen for
``track_timeout_s`` (by ``now``, the arrival clock) are freed. Every drop and reset is counted by reason.

No person is not idle: a person who got a label and then leaves (the track is freed by the timeout or a reset) gets
one last decision, label "gone" (labelling.GONE), which ends the action going on (``ended``), so a behaviour tree
waiting for an end event, or holding the person in a table, learns that the person left.

Coordinates: a person whose joints spread beyond the topology's ``limits`` (hetskel_ros.topology.limits: distance
from the root and extent, or the image for 2D with a known image size) is dropped ("out_of_range"); a window whose
scores are still not finite is dropped ("windows_non_finite") and never reaches the smoothing state.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.model.calibration import bundle_calibration
from hetskel_ros.model.features import empty_row, fill_slot
from hetskel_ros.runtime.association import AssociationRule, Candidate, associate
from hetskel_ros.runtime.buffers import TrackBuffer
from hetskel_ros.runtime.labelling import (  # noqa: F401 (re-exported)
    GONE,
    IDLE,
    UNKNOWN,
    LabelState,
    next_label,
    window_motion,
)
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.topology import TopologyError, load_unified, observation_topology
from hetskel_ros.topology.limits import Limits
from hetskel_ros.topology.normalize import Normalization
from hetskel_ros.topology.window import next_due, track_window_times

FUSED = "fused"
# Reasons the recognizer itself drops an observation (adapters add their own, see observation.InputRejected).
DROP_REASONS = ("malformed", "out_of_range", "stale_stamp", "future_stamp", "duplicate_stamp", "over_rate",
                "too_many_tracks", "untracked_extra", "unknown_topology")
# Events that are not drops: counted for diagnostics and tests.
EVENTS = ("track_reset_backwards", "track_reset_gap", "track_reset_topology", "track_reset_frame",
          "reset_input_time_jump", "reset_all_clock_back", "tracks_freed", "tracks_gone", "windows", "windows_fused",
          "windows_dropped", "windows_non_finite", "batches", "windows_at_track_end", "downsampled", "model_swaps")
STAMP_TOLERANCE_S = 1e-6  # a frame this close to a due time counts as on it (stamps are float seconds)
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # stagger fractions k * GOLDEN mod 1 spread any number of tracks evenly


@dataclass(frozen=True)
class RecognizerConfig:
    """Post-processing and scheduling settings (the node's parameters of the same names)."""

    window_stride_s: float = 0.5  # a window costs ~3 ms: 0.25 gives quicker onsets (bench/results/untrimmed.json)
    min_window_fill: float = 0.5  # fraction of a window span a new track needs before its first window (0.25: earlier)
    threshold: float = 0.5  # smoothed top score needed to start an action (below it: "unknown")
    release_threshold: float = 0.35  # an action goes on while its smoothed score stays >= this (hysteresis)
    idle_motion: float = 0.1  # fastest joints' speed (torso lengths/s, labelling.window_motion) below which a
    # person is "idle" (0: never)
    top_k: int = 3
    smoothing: float = 0.5  # EMA weight of the past windows (0: every window alone)
    restart_on_change: bool = False  # a window confident (>= threshold) in another top-1 restarts the EMA from it
    confirm_windows: int = 2  # consecutive confident windows a new action needs before it starts (labelling;
    # 2 takes false segments on idle people 4x down on the mocap's untrimmed bag for one stride of onset)
    release_windows: int = 1  # consecutive windows that would end the current action before it ends (labelling;
    # 1: at once; a confirmed new action still replaces it at once)
    max_tracks: int = 32  # per input: a flood of new ids on one input never locks out the people of another
    track_timeout_s: float = 2.0
    time_jump_s: float = 1.0
    stagger: bool = True
    max_pending: int = 256  # windows waiting for step(); beyond this the oldest are dropped (counted)

    def __post_init__(self) -> None:
        rules = {
            "window_stride_s": (self.window_stride_s > 0, "> 0"),
            "min_window_fill": (0.0 <= self.min_window_fill <= 1.0, "in [0, 1]"),
            "threshold": (0.0 <= self.threshold <= 1.0, "in [0, 1]"),
            "release_threshold": (0.0 <= self.release_threshold <= 1.0, "in [0, 1] (used: at most threshold)"),
            "idle_motion": (self.idle_motion >= 0.0 and math.isfinite(self.idle_motion), ">= 0"),
            "top_k": (self.top_k >= 1, ">= 1"),
            "confirm_windows": (self.confirm_windows >= 1, ">= 1"),
            "release_windows": (self.release_windows >= 1, ">= 1"),
            "smoothing": (0.0 <= self.smoothing < 1.0, "in [0, 1)"),
            "max_tracks": (self.max_tracks >= 1, ">= 1"),
            "track_timeout_s": (self.track_timeout_s > 0, "> 0"),
            "time_jump_s": (self.time_jump_s > 0, "> 0"),
            "max_pending": (self.max_pending >= 1, ">= 1"),
        }
        for name, (ok, rule) in rules.items():
            if not ok:
                raise ValueError(f"parameter '{name}' = {getattr(self, name)!r} must be {rule}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class InputSpec:
    """What the recognizer needs to know about one input."""

    name: str
    rate_hz: float = 30.0  # expected rate; frames closer than half its period are dropped ("over_rate")
    view_group: str = ""
    dims: int | None = None  # needed for inputs in a view group
    prompt_topology: str = ""  # prompts for topologies the model has none for
    downsample: bool = False  # keep the sample nearest each model frame time instead of dropping "over_rate"


@dataclass(frozen=True)
class Hypothesis:
    class_id: int
    label: str
    score: float


@dataclass(frozen=True)
class Decision:
    """One recognised window of one person (becomes one hetskel_msgs/Action)."""

    track_id: int
    source: str  # input name, or "fused"
    window_start: float
    stamp: float  # the window's last frame (capture time)
    frame_id: str
    label: str
    score: float
    hypotheses: tuple[Hypothesis, ...]
    input: str  # the input whose track drove the window (the 3D one of a fused pair)
    started: bool = False  # label is an action that began with this window
    ended: str = ""  # the action that ended with this window
    since: float = math.nan  # stamp of the first window of the current label


@dataclass
class _Track:
    input: str
    track_id: int
    topology: str
    dims: int
    up: str
    frame_id: str
    prompt: int
    buffer: TrackBuffer
    first_stamp: float
    last_stamp: float
    last_arrival: float
    next_due: float
    windows: int = 0  # windows cut so far (a track that leaves before its first gets one at its end)
    frame_due: float = math.inf  # downsampling: the next model frame time on the track's grid
    held: Observation | None = None  # downsampling: the newest sample before frame_due, not yet kept


@dataclass
class _Pending:
    key: tuple[str, int]  # smoothing state: (source or "fused:<group>", track_id)
    decision_source: str
    input: str
    track_id: int
    start: float
    stamp: float
    frame_id: str
    row: dict[str, np.ndarray | float | int]
    inputs: tuple[str, ...] = ()  # every input whose track is in the row (a fused row: both)
    motion: float = math.nan  # the driving view's recent joint speed (labelling.window_motion)


@dataclass
class _Group:
    name: str
    primary: str  # the 3D input (model slot x3d)
    secondary: str  # the 2D input (model slot x2d)


@dataclass
class InputCounters:
    """Per-input counts for diagnostics."""

    messages: int = 0
    observations: int = 0
    nobody_in_view: int = 0  # messages with nobody in them (an empty array): not drops
    decisions: int = 0  # published decisions this input's tracks took part in (the stall watchdog reads it)
    drops: Counter = field(default_factory=Counter)


class Recognizer:
    """Buffers, windows, batched inference and post-processing for every configured input (see module doc)."""

    def __init__(self, bundle: Bundle, backend, inputs: Sequence[InputSpec], config: RecognizerConfig | None = None,
                 association: AssociationRule | None = None):
        if not inputs:
            raise ValueError("the recognizer needs at least one input")
        names = [spec.name for spec in inputs]
        if len(set(names)) != len(names) or not all(names) or FUSED in names:
            raise ValueError(f"input names must be unique, non-empty and not '{FUSED}', got {names}")
        self.config = config or RecognizerConfig()
        self.association = association or AssociationRule()
        self.inputs = {spec.name: spec for spec in inputs}
        self.skeleton = load_unified()
        self._set_model(bundle, backend, self._model_parts(bundle))
        self.groups = self._groups(inputs)
        self.counters = {name: InputCounters() for name in self.inputs}
        self.events: Counter = Counter()
        self.latencies_s: deque[float] = deque(maxlen=512)  # inference wall time per batch
        self.batch_sizes: deque[int] = deque(maxlen=512)
        self._tracks: dict[tuple[str, int], _Track] = {}
        self._newest: dict[str, float] = {}
        self._held: dict[str, list[Observation]] = {}  # a message whose every person jumped, until the next one
        self._smoothed: dict[tuple[str, int], np.ndarray] = {}
        self._label_states: dict[tuple[str, int], LabelState] = {}
        self._pending: deque[_Pending] = deque()
        self._departures: list[Decision] = []  # "gone" decisions of labelled people whose track was freed
        self._last_now: float | None = None
        self._topologies: dict[str, tuple[int, str, Limits | None]] = {}

    # -- the model ----------------------------------------------------------------------------------------------
    def _model_parts(self, bundle: Bundle) -> tuple[object, Normalization]:
        """(calibration, normalisation) of a bundle, checked against this recognizer; ValueError says what is
        wrong (the node refuses such a bundle and keeps its model)."""
        if list(self.skeleton.names) != list(bundle.unified_joints):
            raise ValueError(f"bundle {bundle.path} was trained on unified joints {bundle.unified_joints}, "
                             f"but config/unified.yaml lists {list(self.skeleton.names)}")
        calibration = bundle_calibration(bundle)  # idle class and open-set rejection, when the bundle has one
        if calibration is not None and calibration.labels != list(bundle.label_names):
            raise ValueError(f"bundle {bundle.path}: its calibration was fitted for labels "
                             f"{calibration.labels}, not the head's {list(bundle.label_names)}")
        if not bundle.label_names:
            raise ValueError(f"bundle {bundle.path} has no labels")
        return calibration, Normalization.from_dict(bundle.normalization, self.skeleton)

    def _set_model(self, bundle: Bundle, backend, parts: tuple[object, Normalization]) -> None:
        self.bundle = bundle
        self.backend = backend
        cfg = bundle.config
        self.window, self.fps = int(cfg.window), float(cfg.fps)
        self.span = (self.window - 1) / self.fps
        self.stretch_short_tracks = cfg.short_tracks == "stretch"
        self.labels = list(bundle.label_names)
        self.calibration, self.normalization = parts
        self._prompts: dict[tuple[str, int, str], int] = {}
        self.prompt_fallbacks: dict[tuple[str, str], str] = {}  # (input, topology) -> topology whose prompts it uses

    def check_model(self, bundle: Bundle) -> None:
        """Raise ValueError when ``bundle`` cannot replace the running model (see ``swap_model``)."""
        self._model_parts(bundle)

    def swap_model(self, bundle: Bundle, backend, now: float) -> list[Decision]:
        """Replace the model between two inference calls, keeping every track.

        Windows already cut are classified first, by the old model (returned, to be published). Then per track the
        buffer is re-cut for the new window span and frame rate (its newest frames kept), its prompt row looked up
        in the new model, and its smoothing state remapped by label name: a label both models know keeps its
        smoothed score, a new one starts at 0 (no renormalisation: a removed label's share just goes). An action
        going on that the new vocabulary lacks ends with the person's next window (``ended``)."""
        parts = self._model_parts(bundle)
        decisions = self.step(now) if self._pending else []
        old_labels = self.labels
        self._set_model(bundle, backend, parts)
        index = {name: i for i, name in enumerate(old_labels)}
        for key, smoothed in self._smoothed.items():
            self._smoothed[key] = np.array([smoothed[index[n]] if n in index else 0.0 for n in self.labels])
        for track in self._tracks.values():
            track.prompt = self.prompt_index(track.topology, track.dims, track.input)
            track.buffer = track.buffer.resized(self.buffer_capacity(track.input))
            if self.inputs[track.input].downsample:
                track.frame_due = self._frame_after(track, track.last_stamp)
            if not track.windows:  # the first window waits for min_window_fill of the new span
                track.next_due = self._first_due(track.track_id, track.first_stamp)
        self.events["model_swaps"] += 1
        return decisions

    # -- configuration ------------------------------------------------------------------------------------------
    def _groups(self, inputs: Sequence[InputSpec]) -> dict[str, _Group]:
        members: dict[str, list[InputSpec]] = {}
        for spec in inputs:
            if spec.view_group:
                members.setdefault(spec.view_group, []).append(spec)
        groups = {}
        for name, specs in members.items():
            dims = sorted((s.dims or 0) for s in specs)
            if len(specs) != 2 or dims != [2, 3]:
                listed = ", ".join(f"{s.name} (dims {s.dims or 'unknown'})" for s in specs)
                raise ValueError(f"view_group '{name}' must hold exactly one 3D and one 2D input with known dims "
                                 f"(set their topology), got {listed}: the model fuses one 3D with one 2D view")
            three = next(s for s in specs if s.dims == 3)
            two = next(s for s in specs if s.dims == 2)
            self.association.check(3, 2, name)
            groups[name] = _Group(name, three.name, two.name)
        return groups

    def _topology_info(self, name: str) -> tuple[int, str, Limits | None]:
        """(dims, up, limits) of a topology file or a robot mapping ("robot_<name>")."""
        info = self._topologies.get(name)
        if info is None:
            topology = observation_topology(name)
            info = (topology.dims, topology.up, topology.limits)
            self._topologies[name] = info
        return info

    def prompt_index(self, topology: str, dims: int, input_name: str) -> int:
        """Prompt row of the model for a topology; one it has none for borrows the input's prompt_topology, else
        the model's first topology of the same dimensionality (logged once by the node via ``prompt_fallbacks``)."""
        key = (topology, dims, input_name)
        index = self._prompts.get(key)
        if index is not None:
            return index
        known = list(self.bundle.config.topologies)
        if topology in known:
            index = known.index(topology)
        else:
            fallback = self.inputs[input_name].prompt_topology
            if fallback not in known:
                same_dims = [t for t in known if self._dims_or_none(t) == dims]
                fallback = same_dims[0] if same_dims else (known[0] if known else "")
            index = known.index(fallback) if fallback in known else 0
            self.prompt_fallbacks[(input_name, topology)] = fallback
        self._prompts[key] = index
        return index

    def _dims_or_none(self, topology: str) -> int | None:
        try:
            return self._topology_info(topology)[0]
        except TopologyError:
            return None

    # -- input --------------------------------------------------------------------------------------------------
    def count_drop(self, input_name: str, reason: str, count: int = 1) -> None:
        """Count ``count`` messages or people of an input dropped for ``reason`` (adapters' rejections too)."""
        self.counters[input_name].drops[reason] += count

    def count_message(self, input_name: str) -> None:
        self.counters[input_name].messages += 1

    def count_nobody(self, input_name: str) -> None:
        """A message with nobody in it (an adapter's empty message): counted, but neither a drop nor a warning."""
        self.counters[input_name].nobody_in_view += 1

    def observe(self, input_name: str, observations: Iterable[Observation], now: float) -> None:
        """Buffer one message's observations (arrival time ``now`` on the node's clock) and cut due windows."""
        if input_name not in self.inputs:
            raise KeyError(f"unknown input '{input_name}' (configured: {list(self.inputs)})")
        self._check_clock(now)
        valid = [obs for obs in observations if self._accept(input_name, obs)]
        for obs in self._screen_stamps(input_name, self._one_untracked(input_name, valid)):
            self._add(input_name, obs, now)

    def _accept(self, input_name: str, obs: Observation) -> bool:
        """Whether one person is a skeleton at all; counts the reason when not."""
        reason = "malformed" if not self._valid(obs) else ""
        if not reason:
            try:
                limits = self._topology_info(obs.topology)[2]
            except TopologyError:
                reason = "unknown_topology"
            else:
                if limits is not None and limits.violation(obs.positions, obs.mask, self.skeleton.root_index,
                                                           obs.image_size if obs.dims == 2 else None):
                    reason = "out_of_range"
        if reason:
            self.count_drop(input_name, reason)
        return not reason

    def _screen_stamps(self, input_name: str, observations: list[Observation]) -> list[Observation]:
        """The people of one message whose stamps may be buffered now (see the module doc on stamps)."""
        jump = self.config.time_jump_s
        newest = self._newest.get(input_name)
        held = self._held.pop(input_name, None)
        if newest is None or not observations:
            if held:
                self._held[input_name] = held  # nobody in this message: neither confirms nor refutes
            return observations
        far = [o for o in observations if abs(o.stamp - newest) > jump]
        if held:
            stamps = [o.stamp for o in held + far]
            if far and len(far) == len(observations) and max(stamps) - min(stamps) <= jump:
                if held[0].stamp < newest:
                    self.reset_input(input_name)
                return held + far  # the input really jumped: both messages count
            self._drop_lone_stamps(input_name, held, newest)
        if not far:
            return observations
        if len(far) < len(observations):
            self._drop_lone_stamps(input_name, far, newest)
            return [o for o in observations if abs(o.stamp - newest) <= jump]
        self._held[input_name] = far
        return []

    def _drop_lone_stamps(self, input_name: str, observations: list[Observation], newest: float) -> None:
        for obs in observations:
            self.count_drop(input_name, "stale_stamp" if obs.stamp < newest else "future_stamp")

    def _check_clock(self, now: float) -> None:
        if self._last_now is not None and now < self._last_now - self.config.time_jump_s:
            self.reset_all("reset_all_clock_back")
            self._last_now = now
        else:
            self._last_now = now if self._last_now is None else max(now, self._last_now)

    def _one_untracked(self, input_name: str, observations: list[Observation]) -> list[Observation]:
        """track_id 0 means "untracked": one such person per input is followed (the one nearest the previous),
        the others are dropped as "untracked_extra" (give track ids to follow several)."""
        untracked = [o for o in observations if o.track_id == 0]
        if len(untracked) <= 1:
            return observations
        previous = self._tracks.get((input_name, 0))
        keep = untracked[0]
        if previous is not None:
            root = self.skeleton.root_index
            last, last_mask = previous.buffer.latest()

            def distance(o: Observation) -> float:
                if not (last_mask[root] and o.mask[root]) or o.dims != previous.dims:
                    return math.inf
                return float(np.linalg.norm(o.positions[root] - last[root]))

            keep = min(untracked, key=distance)
        self.count_drop(input_name, "untracked_extra", len(untracked) - 1)
        return [o for o in observations if o.track_id != 0 or o is keep]

    def _valid(self, obs: Observation) -> bool:
        joints = self.skeleton.num_joints
        positions, mask = np.asarray(obs.positions), np.asarray(obs.mask)
        return (obs.dims in (2, 3) and positions.shape == (joints, obs.dims) and mask.shape == (joints,)
                and math.isfinite(obs.stamp) and bool(mask.any()) and bool(np.isfinite(positions[mask]).all()))

    def _add(self, input_name: str, obs: Observation, now: float) -> None:
        counters = self.counters[input_name]
        key = (input_name, int(obs.track_id))
        track = self._tracks.get(key)
        if track is not None:
            reason = self._reset_reason(track, obs)
            if reason in DROP_REASONS:
                counters.drops[reason] += 1
                return
            if reason:
                self._free(key, reason)
                track = None
        if track is None:
            if self.active_tracks(input_name) >= self.config.max_tracks:
                counters.drops["too_many_tracks"] += 1
                return
            track = self._new_track(input_name, obs, now, obs.up or self._topology_info(obs.topology)[1])
            self._tracks[key] = track
            kept = [obs]
        else:
            kept = self._downsample(track, obs) if self.inputs[input_name].downsample else [obs]
        track.last_stamp = obs.stamp
        track.last_arrival = now
        counters.observations += 1
        self._newest[input_name] = max(obs.stamp, self._newest.get(input_name, obs.stamp))
        for frame in kept:
            self._push(track, frame)

    def _push(self, track: _Track, obs: Observation) -> None:
        """One frame into the track's buffer; cuts the window it completes."""
        track.buffer.push(obs.stamp, obs.positions, obs.mask)
        track.frame_id = obs.frame_id
        track.buffer.drop_before(obs.stamp - self.span - 1.0 / self.fps)
        if obs.stamp >= track.next_due - STAMP_TOLERANCE_S:
            self._schedule(track)

    def _downsample(self, track: _Track, obs: Observation) -> list[Observation]:
        """The samples to keep now so that each model frame time (a grid at the model's fps from the track's first
        stamp) gets the sample nearest it. A sample before the next frame time waits (``held``) until the one after
        that time shows which of the two is nearer; samples nearest no frame time are counted as "downsampled"."""
        period = 1.0 / self.fps
        if obs.stamp < track.frame_due - STAMP_TOLERANCE_S:
            if track.held is not None:
                self.events["downsampled"] += 1
            track.held = obs
            return []
        kept: list[Observation] = []
        held, track.held = track.held, None
        if held is not None and track.frame_due - held.stamp <= obs.stamp - track.frame_due:
            kept.append(held)
            track.frame_due += period
            if obs.stamp < track.frame_due - STAMP_TOLERANCE_S:
                track.held = obs  # nearer to the next frame time than anything so far: wait for its successor
                return kept
        elif held is not None:
            self.events["downsampled"] += 1
        kept.append(obs)
        track.frame_due = self._frame_after(track, obs.stamp)
        return kept

    def _frame_after(self, track: _Track, stamp: float) -> float:
        """The first frame time of the track's grid after ``stamp``."""
        period = 1.0 / self.fps
        steps = math.floor((stamp - track.first_stamp) / period + STAMP_TOLERANCE_S) + 1
        return track.first_stamp + steps * period

    def _reset_reason(self, track: _Track, obs: Observation) -> str:
        if obs.topology != track.topology or obs.dims != track.dims:
            return "track_reset_topology"
        if obs.stamp == track.last_stamp:
            return "duplicate_stamp"  # a driver publishing each frame twice: the copy is dropped, never a reset
        if obs.stamp < track.last_stamp:
            return "track_reset_backwards"
        if obs.stamp - track.last_stamp > self.config.track_timeout_s:
            return "track_reset_gap"
        if obs.frame_id != track.frame_id:
            return "track_reset_frame"  # e.g. a robot's base motion came or went: the positions' frame changed
        if obs.stamp - track.last_stamp < self._min_spacing(track.input) and not self.inputs[track.input].downsample:
            return "over_rate"
        return ""

    def _expected_rate(self, input_name: str) -> float:
        """Frames per second a track buffers: the input's rate (unknown: 4x the model's), at most the model's
        when the input is downsampled."""
        spec = self.inputs[input_name]
        rate = spec.rate_hz if spec.rate_hz > 0 else 4.0 * self.fps
        return min(rate, self.fps) if spec.downsample else rate

    def _min_spacing(self, input_name: str) -> float:
        return 0.5 / self._expected_rate(input_name)

    def buffer_capacity(self, input_name: str) -> int:
        """Frames a track of this input can hold: the window span plus interpolation margin at twice the rate."""
        return math.ceil((self.span + 2.0 / self.fps) * 2.0 * self._expected_rate(input_name)) + 4

    def _first_due(self, track_id: int, first_stamp: float) -> float:
        """When a track's first window is due: ``min_window_fill`` of a span after it began, plus its stagger."""
        phase = ((track_id * GOLDEN) % 1.0) * self.config.window_stride_s if self.config.stagger else 0.0
        return first_stamp + self.config.min_window_fill * self.span + phase

    def _new_track(self, input_name: str, obs: Observation, now: float, up: str) -> _Track:
        first_due = self._first_due(obs.track_id, obs.stamp)
        return _Track(
            input=input_name, track_id=int(obs.track_id), topology=obs.topology, dims=obs.dims, up=up,
            frame_id=obs.frame_id, prompt=self.prompt_index(obs.topology, obs.dims, input_name),
            buffer=TrackBuffer(self.buffer_capacity(input_name), self.skeleton.num_joints, obs.dims),
            first_stamp=obs.stamp, last_stamp=obs.stamp, last_arrival=now, next_due=first_due,
            frame_due=obs.stamp + 1.0 / self.fps)

    # -- windows ------------------------------------------------------------------------------------------------
    def _schedule(self, track: _Track) -> None:
        """Cut the window ending at the track's newest frame, and move its next due time along the grid."""
        end = track.buffer.last_stamp
        track.windows += 1
        track.next_due = float(next_due(track.next_due, end, self.config.window_stride_s, STAMP_TOLERANCE_S))
        group = next((g for g in self.groups.values() if track.input in (g.primary, g.secondary)), None)
        times = track_window_times(end, track.first_stamp, self.window, self.fps, self.stretch_short_tracks)
        if group is None:
            self._queue(track, None, times, track.input, (track.input, track.track_id))
            return
        partner = self._partner(group, track, times[0])
        if track.input == group.secondary:
            if partner is None:  # nobody in the 3D view: this 2D person is classified alone
                self._queue(None, track, times, track.input, (track.input, track.track_id))
            return  # else its 3D partner's windows carry it
        if partner is None:
            self._queue(track, None, times, track.input, (track.input, track.track_id))
        else:
            self.events["windows_fused"] += 1
            self._queue(track, partner, times, FUSED, (f"{FUSED}:{group.name}", track.track_id))

    def _partner(self, group: _Group, track: _Track, window_start: float) -> _Track | None:
        """The other view's track of the same person, when it has frames inside the window."""
        other = group.secondary if track.input == group.primary else group.primary

        def candidates(name: str) -> list[tuple[_Track, Candidate]]:
            out = []
            for t in self._tracks.values():
                if t.input != name or t.last_stamp < window_start:
                    continue
                frame, mask = t.buffer.latest()
                root = self.skeleton.root_index
                out.append((t, Candidate(t.track_id, frame[root].copy() if mask[root] else None, t.dims)))
            return out

        primary, secondary = candidates(group.primary), candidates(group.secondary)
        pairs = associate([c for _, c in primary], [c for _, c in secondary], self.association)
        if track.input == group.primary:
            partner_id = pairs.get(track.track_id)
        else:
            partner_id = next((p for p, s in pairs.items() if s == track.track_id), None)
        if partner_id is None:
            return None
        return self._tracks.get((other, partner_id))

    def _view(self, track: _Track, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames, present = track.buffer.sample(times)
        x = self.normalization.apply(frames, present, self.skeleton, up=track.up)
        return x, present

    def _queue(self, first: _Track | None, second: _Track | None, times: np.ndarray, source: str,
               key: tuple[str, int]) -> None:
        """One model input row: each view in the slot of its dimensionality (a fused pair fills both)."""
        row = empty_row(self.window, self.skeleton.num_joints)
        views = [t for t in (first, second) if t is not None]
        motion = math.nan
        for track in views:
            x, present = self._view(track, times)
            fill_slot(row, x, present, track.prompt)
            if not math.isfinite(motion):
                motion = window_motion(x, present, self.fps)
        driver = views[0]
        if len(self._pending) >= self.config.max_pending:
            self._pending.popleft()
            self.events["windows_dropped"] += 1
        self._pending.append(_Pending(key, source, driver.input, driver.track_id, float(times[0]),
                                      float(times[-1]), driver.frame_id, row, tuple(t.input for t in views),
                                      motion))

    # -- inference and post-processing --------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    def step(self, now: float) -> list[Decision]:
        """Free stale tracks, then classify every pending window in one batched inference call."""
        self._check_clock(now)
        self.expire(now)
        if not self._pending:
            return self._take_departures()
        batch = list(self._pending)
        self._pending.clear()
        inputs = {name: np.stack([np.asarray(p.row[name]) for p in batch]) for name in batch[0].row}
        inputs["t3d"] = inputs["t3d"].astype(np.int64)
        inputs["t2d"] = inputs["t2d"].astype(np.int64)
        began = time.perf_counter()
        try:
            features, scores = self.backend.infer(inputs)
        except Exception:
            self.events["windows_dropped"] += len(batch)  # counted, then the caller reports the error
            raise
        self.latencies_s.append(time.perf_counter() - began)
        self.batch_sizes.append(len(batch))
        self.events["batches"] += 1
        self.events["windows"] += len(batch)
        verdicts = self.calibration.judge(features) if self.calibration is not None else [""] * len(batch)
        decisions = []
        for pending, probabilities, verdict in zip(batch, scores, verdicts, strict=True):
            probabilities = np.asarray(probabilities, np.float64)
            if not np.isfinite(probabilities).all():  # never into the smoothing state: it would keep the NaN
                self.events["windows_non_finite"] += 1
                continue
            for name in pending.inputs:
                self.counters[name].decisions += 1
            decisions.append(self._decide(pending, probabilities, verdict))
            if (pending.input, pending.track_id) not in self._tracks:  # a track's last window: forget its state
                self._smoothed.pop(pending.key, None)
                self._label_states.pop(pending.key, None)
        return decisions + self._take_departures()

    def _take_departures(self) -> list[Decision]:
        out, self._departures = self._departures, []
        return out

    def _decide(self, pending: _Pending, probabilities: np.ndarray, verdict: str = "") -> Decision:
        previous = self._smoothed.get(pending.key)
        alpha = self.config.smoothing
        smoothed = probabilities if previous is None else alpha * previous + (1.0 - alpha) * probabilities
        if previous is not None and self.config.restart_on_change:
            top = int(np.argmax(probabilities))
            if probabilities[top] >= self.config.threshold and top != int(np.argmax(previous)):
                smoothed = probabilities  # a change of action costs no smoothing lag
        self._smoothed[pending.key] = smoothed
        order = np.argsort(-smoothed, kind="stable")[: self.config.top_k]
        hypotheses = tuple(Hypothesis(int(i), self.labels[i], float(smoothed[i])) for i in order)
        state = self._label_states.setdefault(pending.key, LabelState())
        labelled = next_label(state, smoothed, self.labels, pending.stamp, pending.motion, self.config, verdict)
        held = labelled.label in self.labels and labelled.label != IDLE
        score = float(smoothed[self.labels.index(labelled.label)]) if held else hypotheses[0].score
        return Decision(track_id=pending.track_id, source=pending.decision_source, window_start=pending.start,
                        stamp=pending.stamp, frame_id=pending.frame_id, label=labelled.label,
                        score=score, hypotheses=hypotheses, input=pending.input,
                        started=labelled.started, ended=labelled.ended, since=labelled.since)

    # -- track lifetime -----------------------------------------------------------------------------------------
    def expire(self, now: float) -> int:
        """Free tracks that received nothing for track_timeout_s (by arrival time); returns how many."""
        stale = [k for k, t in self._tracks.items() if now - t.last_arrival > self.config.track_timeout_s]
        for key in stale:
            track = self._tracks[key]
            if not track.windows and len(track.buffer) >= 2:  # a short visit still gets its one label, never silence
                self.events["windows_at_track_end"] += 1
                self._schedule(track)
            self._free(key, "tracks_freed", gone=True)
        return len(stale)

    def _free(self, key: tuple[str, int], event: str, gone: bool = False) -> None:
        """Forget a track; ``gone``: the person left (timeout, reset), not a track restarting on the same person."""
        freed = self._tracks.pop(key, None)
        track = freed if gone else None  # only a person who left gets "gone"
        if event:
            self.events[event] += 1
        input_name, track_id = key
        self._smoothed.pop(key, None)
        self._depart(track, input_name, self._label_states.pop(key, None))
        for group in self.groups.values():
            if input_name in (group.primary, group.secondary):
                self._smoothed.pop((f"{FUSED}:{group.name}", track_id), None)
                self._depart(track, FUSED, self._label_states.pop((f"{FUSED}:{group.name}", track_id), None))

    def _depart(self, track: _Track | None, source: str, state: LabelState | None) -> None:
        """A labelled person left: queue its "gone" decision (ends the action going on)."""
        if track is None or state is None or not state.label:
            return
        self.events["tracks_gone"] += 1
        self._departures.append(Decision(
            track_id=track.track_id, source=source, window_start=track.last_stamp, stamp=track.last_stamp,
            frame_id=track.frame_id, label=GONE, score=0.0, hypotheses=(), input=track.input, started=False,
            ended=state.action, since=track.last_stamp))

    def reset_all(self, event: str = "reset_all_clock_back") -> None:
        """Forget every track, smoothing state and pending window (the clock jumped back, e.g. a bag loop)."""
        for input_name, held in self._held.items():
            self._drop_lone_stamps(input_name, held, self._newest.get(input_name, math.inf))
        self._held.clear()
        for key in list(self._tracks):
            self._free(key, "", gone=True)
        self._tracks.clear()
        self._smoothed.clear()
        self._label_states.clear()
        self._pending.clear()
        self._newest.clear()
        self.events[event] += 1

    def reset_input(self, input_name: str, event: str = "reset_input_time_jump") -> None:
        """Forget every track of one input (all its people's stamps jumped back together: its source restarted)."""
        for key in [k for k in self._tracks if k[0] == input_name]:
            self._free(key, "", gone=True)
        self._newest.pop(input_name, None)
        self.events[event] += 1

    # -- introspection ------------------------------------------------------------------------------------------
    def active_tracks(self, input_name: str | None = None) -> int:
        return sum(1 for t in self._tracks.values() if input_name is None or t.input == input_name)

    def track_keys(self) -> list[tuple[str, int]]:
        return list(self._tracks)

    def buffered_frames(self) -> int:
        """Frames held over all tracks (bounded by max_tracks x buffer capacity)."""
        return sum(len(t.buffer) for t in self._tracks.values())

    def buffer_bytes(self) -> int:
        return sum(t.buffer.nbytes for t in self._tracks.values())

    def latest_frames(self) -> list[TrackSnapshot]:
        """Every track's newest frame (for RViz markers)."""
        out = []
        for track in self._tracks.values():
            frame, mask = track.buffer.latest()
            out.append(TrackSnapshot(track.input, track.track_id, track.frame_id, track.dims, track.up,
                                     track.last_stamp, frame.copy(), mask.copy()))
        return out


@dataclass(frozen=True)
class TrackSnapshot:
    """One track's newest unified frame, in its sensor's frame and axes."""

    input: str
    track_id: int
    frame_id: str
    dims: int
    up: str
    stamp: float
    positions: np.ndarray
    mask: np.ndarray

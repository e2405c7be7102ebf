"""Heterogeneous views of one sequence, as the paper and MS-CLR train on.

A clip is a real sequence in its own topology: 3D (mocap, Kinect: world or camera coordinates, turned Y up) or 2D
(annotated or estimated pixels). From a 3D clip we make:
  * a 3D view in a 3D topology (the joints that topology and the clip share), yaw-aligned and augmented;
  * a 2D view in a 2D topology: the clip seen by a virtual pinhole camera at a random viewpoint, with the pixel noise,
    jitter, low confidences and dropped joints of a real 2D estimator, rendered as that topology's NATIVE array and
    mapped back with its own joint map (so COCO's spine joints come from eqs. 1-3, as they would on a robot);
  * the lifter's target: the same frames' 3D in that camera's frame (eq. 11 compares the lifted 2D with it).
The 3D view is in the clip's own topology (real sensor noise, real missing joints) with probability
``native_view``, else in a synthetic topology's joint subset. A 2D clip gives two real 2D views (independent crops,
in-plane rotation, pixel noise, dropped joints); it has no lifter target.
Views of one sequence are positives; the 2D/3D pair trains the lifter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetskel_ros.topology import Topology, UnifiedSkeleton, load_topology, normalize, up_rotation
from hetskel_ros.topology.normalize import Normalization
from hetskel_ros.topology.window import interpolate_frames


@dataclass
class Clip:
    """One sequence mapped to the unified skeleton: 3D in metres, Y up; 2D in pixels as the topology gives them."""

    positions: np.ndarray  # (T, J, 3) or (T, J, 2)
    mask: np.ndarray  # (T, J) bool
    fps: float
    label: int = -1
    style: int = -1
    name: str = ""
    topology: str = "bandai_mocap"
    up: str = "+y"  # of the positions: "+y" for 3D clips, the topology's image axis for 2D
    dataset: str = ""

    @property
    def dims(self) -> int:
        return int(self.positions.shape[-1])

    @property
    def duration(self) -> float:
        return (len(self.positions) - 1) / self.fps


def clips_from_sequences(sequences, topology: Topology, skeleton: UnifiedSkeleton, dataset: str = "") -> list[Clip]:
    """Map every native sequence of a SequenceSet into the unified skeleton once (3D turned Y up)."""
    clips = []
    confidence = sequences.confidence
    to_y_up = up_rotation(topology.up).T.astype(np.float32) if topology.dims == 3 else np.eye(2, dtype=np.float32)
    up = "+y" if topology.dims == 3 else topology.up
    for i, native in enumerate(sequences.sequences):
        unified, mask = topology.to_unified(native, None if confidence is None else confidence[i], unified=skeleton)
        unified = np.where(mask[..., None], unified @ to_y_up, 0.0).astype(np.float32)
        clips.append(Clip(unified, mask, float(sequences.fps), int(sequences.labels[i]),
                          int(sequences.styles[i]) if sequences.styles is not None else -1, str(sequences.names[i]),
                          topology.name, up, dataset))
    return clips


@dataclass
class ViewSettings:
    """Augmentation and virtual-camera ranges; the defaults model a robot's RGB camera and a 2D estimator."""

    speed: tuple[float, float] = (0.8, 1.25)  # playback speed jitter of the crop
    rotate_deg: float = 30.0  # residual yaw after alignment (3D view)
    shear: float = 0.15  # AimCLR-style shear of the 3D view
    scale: tuple[float, float] = (0.9, 1.1)
    noise_3d: float = 0.02  # torso lengths
    drop_joint: float = 0.05  # probability a joint is missing in a view
    camera_distance: tuple[float, float] = (2.5, 6.0)  # metres
    camera_elevation_deg: tuple[float, float] = (-5.0, 30.0)
    focal_px: tuple[float, float] = (450.0, 1000.0)
    image_size: tuple[int, int] = (640, 480)
    pixel_noise: tuple[float, float] = (0.5, 3.0)  # std of a 2D estimator's error, pixels
    view3d: list[str] = field(default_factory=lambda: ["bandai_mocap", "kinect_v2", "azure_kinect", "smpl24"])
    view2d: list[str] = field(default_factory=lambda: ["coco17", "mediapipe_pose", "openpose_body25"])
    # a crop starts before the clip (padded with its first frame) this often, by up to half a window: the ROS node
    # classifies a new track's first windows once half full, padded so
    pad_start: float = 0.0
    shared_crop: bool = False  # the 2D view shows the 3D view's frames, as fused input does at run time
    native_view: float = 0.5  # a 3D clip's 3D view is in its own topology this often, else a synthetic one
    rotate_2d_deg: float = 10.0  # in-plane rotation of a real 2D view (a tilted camera)
    pixel_noise_real: float = 1.0  # std in torso lengths x 1/100 added to a real 2D view (annotation jitter)
    # a crop spans the whole clip this often, played at the speed that fills the window (clamped to
    # whole_clip_speed): what the feature API's whole-sequence feature shows the encoder, so a 1 s gesture fills the
    # window instead of sitting at its end behind a second of its own first frame
    whole_clip: float = 0.0
    whole_clip_speed: tuple[float, float] = (0.33, 3.0)


def crop_times(clip: Clip, window: int, fps: float, rng: np.random.Generator | None, speed: float = 1.0,
               pad_start: float = 0.0) -> np.ndarray:
    """Frame times of one window: random start (training) or centred (rng None); short clips pad at the start.

    With probability `pad_start` a training crop instead begins up to half a window before the clip.
    """
    span = (window - 1) / fps * speed
    slack = clip.duration - span
    if slack <= 0:
        start = slack  # before the clip: interpolate_frames repeats the first frame
    elif rng is None:
        start = slack / 2
    elif pad_start and rng.random() < pad_start:
        start = -rng.uniform(0, span / 2)
    else:
        start = rng.uniform(0, slack)
    return start + np.arange(window) / fps * speed


def yaw_rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)


class ViewMaker:
    """Makes the model's inputs from clips: 3D views, 2D camera views and lifter targets."""

    def __init__(self, skeleton: UnifiedSkeleton, window: int, fps: float, settings: ViewSettings | None = None,
                 normalization: Normalization | None = None):
        self.skeleton = skeleton
        self.window = window
        self.fps = fps
        self.settings = settings or ViewSettings()
        self.normalization = normalization or Normalization()
        # the lifter's target is 3D in the camera's frame: rescaled like any 3D input, never yaw-aligned
        self._target_normalization = Normalization(yaw_align=False, bone_lengths=self.normalization.bone_lengths)
        self.topologies: dict[str, Topology] = {}
        self.coverage: dict[str, np.ndarray] = {}
        self._native_source: dict[str, np.ndarray] = {}
        for name in self.settings.view3d + self.settings.view2d:
            self.topology(name)

    def topology(self, name: str) -> Topology:
        """A view topology (synthetic or a clip's own), loaded once."""
        if name not in self.topologies:
            topology = self.topologies[name] = load_topology(name)
            self.coverage[name] = topology.coverage(self.skeleton)
            self._native_source[name] = self._native_to_unified_index(topology)
        return self.topologies[name]

    def _native_to_unified_index(self, topology: Topology) -> np.ndarray:
        """For each native joint, the unified joint it shows (-1: a joint the unified skeleton lacks)."""
        names = self.skeleton.names
        return np.array([names.index(topology.canonical[j]) if topology.canonical.get(j) in names else -1
                         for j in topology.joints], dtype=np.int64)

    # -- one window of a clip -------------------------------------------------------------------------------
    def frames(self, clip: Clip, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        stamps = np.arange(len(clip.positions)) / clip.fps
        return interpolate_frames(stamps, clip.positions, clip.mask, times)

    def training_frames(self, clip: Clip, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented crop: speed jitter, sometimes padded at the start, sometimes the whole clip."""
        s = self.settings
        speed = rng.uniform(*s.speed)
        if s.whole_clip and rng.random() < s.whole_clip:
            speed = float(np.clip(clip.duration / ((self.window - 1) / self.fps), *s.whole_clip_speed))
            return self.frames(clip, crop_times(clip, self.window, self.fps, rng, speed))
        return self.frames(clip, crop_times(clip, self.window, self.fps, rng, speed, s.pad_start))

    def view3d(self, frames: np.ndarray, mask: np.ndarray, topology: str,
               rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """A 3D sensor's view: the joints `topology` has, normalised and yaw-aligned, augmented when rng is given."""
        self.topology(topology)
        mask = mask & self.coverage[topology][None]
        if rng is not None:
            mask = mask & (rng.random(mask.shape[1]) >= self.settings.drop_joint)[None]
        x = self.normalization.apply(frames, mask, self.skeleton, up="+y")
        if rng is not None:
            s = self.settings
            rot = yaw_rotation(np.deg2rad(rng.uniform(-s.rotate_deg, s.rotate_deg)))
            shear = np.eye(3) + rng.uniform(-s.shear, s.shear, (3, 3)) * (1 - np.eye(3))
            x = (x @ (shear @ rot).T) * rng.uniform(*s.scale) + rng.normal(0, s.noise_3d, x.shape)
            x = np.where(mask[..., None], x, 0.0)
        return x.astype(np.float32), mask

    def camera(self, frames: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> dict:
        """A random pinhole camera looking at the subject: world->camera rotation, position, intrinsics."""
        s = self.settings
        root = self.skeleton.root_index
        present = np.flatnonzero(mask[:, root])
        target = frames[present[0], root] if len(present) else np.zeros(3, np.float32)
        yaw = rng.uniform(0, 2 * np.pi)
        elevation = np.deg2rad(rng.uniform(*s.camera_elevation_deg))
        distance = rng.uniform(*s.camera_distance)
        offset = np.array([np.sin(yaw) * np.cos(elevation), np.sin(elevation), np.cos(yaw) * np.cos(elevation)])
        position = target + distance * offset
        forward = (target - position) / np.linalg.norm(target - position)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return {"R": np.stack([right, down, forward]).astype(np.float32), "t": position.astype(np.float32),
                "f": rng.uniform(*s.focal_px), "size": s.image_size}

    def view2d(self, frames: np.ndarray, mask: np.ndarray, topology: str, rng: np.random.Generator) -> dict:
        """A 2D estimator's view through a random camera, and the lifter's 3D target in that camera's frame."""
        s = self.settings
        cam = self.camera(frames, mask, rng)
        in_camera = (frames - cam["t"]) @ cam["R"].T  # x right, y down, z forward
        depth = np.maximum(in_camera[..., 2:3], 0.1)
        width, height = cam["size"]
        pixels = cam["f"] * in_camera[..., :2] / depth + np.array([width / 2, height / 2], np.float32)
        pixels = pixels + rng.normal(0, rng.uniform(*s.pixel_noise), pixels.shape)
        confidence = np.where(mask, rng.uniform(0.4, 1.0, mask.shape), 0.0)
        confidence[rng.random(mask.shape) < s.drop_joint] = 0.0  # missed detections, frame by frame
        # render the topology's native array, then map it back with the topology's own joint map
        source = self._native_source[topology]
        valid = source >= 0
        native = np.full((len(frames), len(source), 2), np.nan, np.float32)
        native[:, valid] = pixels[:, source[valid]]
        native_conf = np.zeros((len(frames), len(source)), np.float32)
        native_conf[:, valid] = confidence[:, source[valid]]
        x2d, m2d = self.topologies[topology].to_unified(native, native_conf, unified=self.skeleton)
        x2d = normalize(x2d, m2d, self.skeleton, up="-y", yaw_align=False)
        # lifter target: the camera frame turned Y-up (x right, y up, z toward the camera: a proper rotation)
        target = in_camera * np.array([1.0, -1.0, -1.0], np.float32)
        target_mask = mask & m2d
        target = self._target_normalization.apply(target, target_mask, self.skeleton, up="+y")
        root = self.skeleton.root_index
        target_mask = target_mask & target_mask[:, root:root + 1]  # root-relative per frame, as the lifter predicts
        target = np.where(target_mask[..., None], target - target[:, root:root + 1], 0.0)
        return {"x2d": x2d.astype(np.float32), "m2d": m2d, "target": target.astype(np.float32),
                "target_mask": target_mask}

    def view2d_real(self, frames: np.ndarray, mask: np.ndarray, up: str,
                    rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """A real 2D clip's view: normalised as the node does; augmented (in-plane rotation, jitter, dropped
        joints) when rng is given."""
        if rng is not None:
            mask = mask & (rng.random(mask.shape) >= self.settings.drop_joint)
        x = normalize(frames, mask, self.skeleton, up=up, yaw_align=False)
        if rng is not None:
            s = self.settings
            angle = np.deg2rad(rng.uniform(-s.rotate_2d_deg, s.rotate_2d_deg))
            c, sn = np.cos(angle), np.sin(angle)
            shear = np.eye(2) + rng.uniform(-s.shear, s.shear, (2, 2)) * (1 - np.eye(2))
            x = x @ (shear @ np.array([[c, -sn], [sn, c]])).T * rng.uniform(*s.scale)
            x = x + rng.normal(0, s.pixel_noise_real / 100, x.shape)
            x = np.where(mask[..., None], x, 0.0)
        return x.astype(np.float32), mask

    # -- batches --------------------------------------------------------------------------------------------
    def training_batch(self, clips: list[Clip], rng: np.random.Generator, topology_index: dict[str, int]) -> dict:
        """One sample per clip: two views from independent random crops (positives of each other).

        A 3D clip gives a 3D view (its own topology with probability ``native_view``) and a synthetic 2D camera
        view with its lifter target; a 2D clip gives two real 2D views (x2d and x2d_b) and no 3D view
        (``real3d`` 0, ``target_mask`` empty): the objective then compares the two lifted 2D views.
        """
        s = self.settings
        keys = ("x3d", "m3d", "t3d", "x2d", "m2d", "t2d", "target", "target_mask", "label", "real3d", "x2d_b",
                "m2d_b", "t2d_b")
        out: dict[str, list] = {k: [] for k in keys}
        T, J = self.window, self.skeleton.num_joints
        for clip in clips:
            frames_a = self.training_frames(clip, rng)
            frames_b = frames_a if s.shared_crop else self.training_frames(clip, rng)
            if clip.dims == 3:
                native = rng.random() < s.native_view
                name3 = clip.topology if native else s.view3d[rng.integers(len(s.view3d))]
                x3, m3 = self.view3d(*frames_a, name3, rng)
                name2 = s.view2d[rng.integers(len(s.view2d))]
                v2 = self.view2d(*frames_b, name2, rng)
                sample = {"x3d": x3, "m3d": m3, "t3d": topology_index[name3], "x2d": v2["x2d"], "m2d": v2["m2d"],
                          "t2d": topology_index[name2], "target": v2["target"], "target_mask": v2["target_mask"],
                          "real3d": 1.0, "x2d_b": np.zeros((T, J, 2), np.float32), "m2d_b": np.zeros((T, J), bool),
                          "t2d_b": 0}
            else:
                xa, ma = self.view2d_real(*frames_a, clip.up, rng)
                xb, mb = self.view2d_real(*frames_b, clip.up, rng)
                prompt = topology_index[clip.topology]
                sample = {"x3d": np.zeros((T, J, 3), np.float32), "m3d": np.zeros((T, J), bool), "t3d": prompt,
                          "x2d": xa, "m2d": ma, "t2d": prompt, "target": np.zeros((T, J, 3), np.float32),
                          "target_mask": np.zeros((T, J), bool), "real3d": 0.0, "x2d_b": xb, "m2d_b": mb,
                          "t2d_b": prompt}
            sample["label"] = clip.label
            for key in keys:
                out[key].append(sample[key])
        return {k: np.stack(v) if isinstance(v[0], np.ndarray) else np.array(v) for k, v in out.items()}

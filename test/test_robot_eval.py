"""The robot evaluation in short (CI): held-out mocap retargeted onto the Unitree G1, sent as a robot sends it
(JointState at 200 Hz, odom -> pelvis on /tf) over DDS into a recognizer process, labelled like the same clips given
as human skeletons. The full measurement (100 clips per robot, G1 and TALOS, with and without /tf) is
``hetskel-robot-eval`` (bench/results/robot.json). Data: Bandai Namco Research Motion Dataset (Bandai Namco
Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from hetskel_ros.model.bundle import load_bundle, save_bundle
from hetskel_ros.ros import robot_eval
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization, template_lengths
from hetskel_ros.topology.retarget import Retargeter
from hetskel_ros.topology.sequences import full_mocap_path, load_sequences, sample_path, select_sample

pytestmark = pytest.mark.slow
CLIP_LABELS = ("wave-right-hand", "walk", "raise-up-left-hand")  # arms alone, base motion, one arm


@pytest.fixture(scope="module")
def sample():
    return load_sequences(sample_path())  # the shipped sample: the held-out (youthful) style


@pytest.fixture(scope="module")
def model(sample, tmp_path_factory) -> str:
    """The shipped model, with a bone-length template from the human clips when it has none: robots need one (a
    humanoid's limbs are short for its torso; hetskel_ros.topology.normalize.rescale_bones)."""
    bundle = load_bundle(default_bundle_path())
    if bundle.normalization.get("bone_lengths"):
        return str(default_bundle_path())
    skeleton, topology = load_unified(), load_topology(sample.topology)
    template = template_lengths([topology.to_unified(s) for s in sample.sequences], skeleton)
    bundle.normalization = Normalization(True, tuple(float(v) for v in template)).to_dict(skeleton)
    return str(save_bundle(bundle, tmp_path_factory.mktemp("robot_eval") / "with_template.hetskel"))


def test_retargeting_reaches_the_human_bone_directions(sample):
    retargeter = Retargeter("unitree_g1")
    index = select_sample(sample, per_label=1)[0]
    motion = retargeter.retarget(sample.sequences[index], sample.fps)
    kinematics = retargeter.kinematics
    assert motion.q.shape == (len(sample.sequences[index]), kinematics.num_joints)
    assert np.all(motion.q >= kinematics.lower - 1e-9) and np.all(motion.q <= kinematics.upper + 1e-9)
    assert motion.residual_m < 0.04  # links within a few cm of the targets (robot lengths, human directions)
    assert np.allclose(np.linalg.det(motion.base[:, :3, :3]), 1.0)


def test_robot_labels_over_dds_agree_with_the_human_labels(sample, model):
    indices = [next(i for i in select_sample(sample, per_label=2) if sample.label_names[sample.labels[i]] == label)
               for label in CLIP_LABELS]
    clips = robot_eval.lay_out(sample, indices)
    human = robot_eval.human_votes(model, sample, clips)
    assert [human.winner(k) for k in range(len(clips))] == list(CLIP_LABELS)
    result = robot_eval.evaluate_robot(model, "unitree_g1", sample, clips, ["tf"], rate=200.0, speed=2.0,
                                       cache=None, namespace=f"robot_eval_ci_{os.getpid()}")
    run = result["conditions"]["tf"]
    assert run["predicted"] == [human.winner(k) for k in range(len(clips))]  # the robot reads as the person
    assert run["live_equals_offline"]["clip_labels_equal"] == 1.0
    assert run["live_equals_offline"]["windows_live"] == run["live_equals_offline"]["windows_offline"]
    diagnostics = run["diagnostics"]
    assert int(diagnostics["messages"]) == result["joint_state_messages"]  # none lost at 200 Hz, 2x real time
    assert diagnostics["dropped"] == "0" and int(diagnostics["with_base_motion"]) == result["joint_state_messages"]
    assert diagnostics["base_motion"] == "from /tf 'odom' -> 'pelvis'"
    assert Path(robot_eval.relative(model)).name.endswith(".hetskel")


def test_the_robot_views_a_head_learns_from_are_what_the_joint_state_input_sees(sample):
    """training/union.py fits the deployed head on robot views made by ``robot_skeleton``: they must be the
    skeletons the node's joint_state adapter builds from the same JointStates and odom -> base transforms."""
    from hetskel_ros.ros.adapters.base import InputConfig
    from hetskel_ros.ros.adapters.joint_state import JointStateAdapter
    from hetskel_ros.ros.adapters.transforms import TransformBuffer
    from hetskel_ros.topology import load_robot
    from hetskel_ros.topology.retarget import link_kinematics, robot_skeleton

    mapping = load_robot("unitree_g1")
    index = select_sample(sample, per_label=1)[3]
    motion = Retargeter("unitree_g1").retarget(sample.sequences[index], sample.fps)
    unified, mask = mapping.as_topology().to_unified(robot_skeleton(motion, link_kinematics(mapping))
                                                     .astype(np.float32))

    clips = robot_eval.lay_out(sample, [index])
    samples = robot_eval.robot_samples([motion], clips, sample.fps)  # one message per frame
    buffer = TransformBuffer(cache_s=1e9)
    odom, base = mapping.base_motion.odom_frame, mapping.base_motion.base_frame
    for s in samples:
        buffer.add(odom, base, s.stamp, s.base[:3, 3], robot_eval.quaternion(s.base[:3, :3]))
    params = robot_eval.input_config("unitree_g1", sample.fps, True)
    config = InputConfig(name="robot", topic="joint_states", kind="joint_state", robot="unitree_g1",
                         rate_hz=sample.fps, params={k: v for k, v in params.items()
                                                     if k not in ("topic", "kind", "robot", "rate_hz")})
    adapter = JointStateAdapter(config, None, transforms=buffer)
    seen = []
    for s in samples:
        adapter.convert_parts(robot_eval.joint_state(motion.joint_names, s))
        released, _ = adapter.release(s.stamp)
        seen += [obs for message in released for obs in message]
    assert len(samples) == len(unified) and len(seen) >= len(samples) - 1  # the last waits for a later transform
    for frame, obs in enumerate(seen):
        assert obs.stamp == pytest.approx(samples[frame].stamp)
        assert np.array_equal(obs.mask, mask[frame])
        assert np.allclose(obs.positions[mask[frame]], unified[frame][mask[frame]], atol=1e-5)


@pytest.mark.skipif(not full_mocap_path().is_file(),
                    reason="needs the mocap's training styles (../shared/data/bandai-namco-motion); the shipped "
                           "sample holds only the held-out style")
def test_robot_head_refits_the_head_outside_the_graph_with_a_bone_template(tmp_path):
    """training.robot_head: the encoder's graph is kept byte for byte, the head (head.npz) learns from the mocap's
    training clips and robot views of them, and the bundle gets the bone template the node then applies. With
    ``--windows --idle-sets`` it learns from every window the node cuts, plus an idle class from real standing
    phases, and ``--blend`` averages that head with the clip head (the shipped default's command: models/README.md)."""
    from training import robot_head
    from training.datasets import load_dataset

    base = load_bundle(default_bundle_path())
    actions = [n for n in base.label_names if n != "idle"]
    out = tmp_path / "robots.hetskel"
    assert robot_head.main(["--bundle", str(default_bundle_path()), "--out", str(out), "--robots", "unitree_g1",
                            "--robot-clips", "1", "--cache", str(tmp_path / "cache")]) == 0
    refit = load_bundle(out)
    assert refit.onnx == base.onnx and refit.label_names == actions
    assert refit.head is not None and refit.head.info["robot_views"] == len(actions)
    assert refit.normalization.get("bone_lengths")
    assert refit.provenance["robot_head"]["robots"] == ["unitree_g1"]

    blended = tmp_path / "blend.hetskel"
    assert robot_head.main(["--bundle", str(default_bundle_path()), "--out", str(blended), "--robots", "unitree_g1",
                            "--robot-clips", "1", "--cache", str(tmp_path / "cache"), "--windows",
                            "--idle-sets", "utd_mhad", "--idle-per-set", "40", "--blend", "0.5"]) == 0
    taught = load_bundle(blended)
    assert taught.onnx == base.onnx and taught.label_names == [*actions, "idle"]
    window_fit, clip_fit = taught.head.info["second"], taught.head.info["first"]
    assert taught.head.info["kind"] == "blend" and window_fit["windows"] and not clip_fit["windows"]
    assert window_fit["robot_views"] > clip_fit["robot_views"] == len(actions) and window_fit["idle_rows"] > 0
    # the clips' own standing windows are idle examples, but never the feminine style's: the untrimmed bench's idle
    assert 0 < window_fit["standing_rows"] < window_fit["idle_rows"]
    mocap = load_dataset("bandai")
    styles, names = mocap.data.group("style")
    assert names.index("feminine") not in set(styles[mocap.idle_train()]) and len(mocap.idle_train()) > 0
    assert taught.provenance["robot_head"]["blend"] == 0.5
    assert robot_head.main(["--bundle", str(default_bundle_path()), "--out", str(tmp_path / "x.hetskel"),
                            "--blend", "0.5"]) == 1  # a blend needs the window head: refused before any work

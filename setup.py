"""hetskel_ros: an ament_python package (colcon) that also installs with pip."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hetskel_ros"


def data_files() -> list[tuple[str, list[str]]]:
    """Files colcon installs under share/hetskel_ros (config, launch, shipped model)."""
    entries = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
    ]
    for folder in sorted({p.rsplit("/", 1)[0] for p in glob("config/**/*.yaml", recursive=True)}):
        entries.append((f"share/{PACKAGE}/{folder}", glob(f"{folder}/*.yaml")))
    entries.append((f"share/{PACKAGE}/models", [f for f in glob("models/*") if os.path.isfile(f)]))
    entries.append((f"share/{PACKAGE}/data", glob("data/*.npz") + glob("data/*.md")))
    return [(dest, files) for dest, files in entries if files]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    data_files=data_files(),
    install_requires=["setuptools", "numpy", "pyyaml"],
    extras_require={"test": ["pytest"]},  # also how `colcon test` knows to run the suite with pytest
    zip_safe=False,
    maintainer="hetskel_ros developers",
    maintainer_email="hetskel-ros@example.org",
    description="Action recognition from heterogeneous skeletons (any topology, one model) for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hetskel-topology = hetskel_ros.topology.cli:main",
            "hetskel-bench = hetskel_ros.runtime.bench:main",
            "hetskel-train = training.cli:main",
            "action_reactor = hetskel_ros.ros.entry:action_reactor",
            "recognizer = hetskel_ros.ros.entry:recognizer",
            "hetskel-launch = hetskel_ros.ros.entry:launcher",
            "mediapipe_pose = hetskel_ros.ros.entry:mediapipe_pose",
            "video_source = hetskel_ros.ros.entry:video_source",
            "hetskel-bag = hetskel_ros.ros.bagtools.cli:main",
            "bag_player = hetskel_ros.ros.entry:bag_player",
            "hetskel-demo = hetskel_ros.ros.bagtools.demo:main",
            "hetskel-robot-eval = hetskel_ros.ros.robot_eval:main",
            "hetskel-teach = hetskel_ros.ros.entry:teach",
            "teach_recorder = hetskel_ros.ros.entry:teach_recorder",
        ],
    },
)

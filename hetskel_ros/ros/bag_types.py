"""hetskel_msgs types for `rosbags`, so bags of skeletons and actions are written and read without rosbag2_py.

rosbags (pure Python) knows only the standard ROS 2 messages; the project's own interfaces are registered at run
time from their ``.msg`` text. The text is taken from the installed hetskel_msgs (the definition rclpy uses, so
bags and live topics agree on the type hash), else from ``msg/msg`` of a source checkout.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSG_PACKAGE = "hetskel_msgs"
_CHECKOUT_MSG_DIR = Path(__file__).resolve().parents[2] / "msg" / "msg"


def msgtype(name: str) -> str:
    """Full ROS 2 type name of one hetskel_msgs message, e.g. ``hetskel_msgs/msg/Skeleton``."""
    return f"{MSG_PACKAGE}/msg/{name}"


def _installed_msg_dirs() -> list[Path]:
    """``share/hetskel_msgs/msg`` of the prefix that holds the importable hetskel_msgs, then AMENT_PREFIX_PATH."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec(MSG_PACKAGE)
    if spec is not None and spec.origin:
        # <prefix>/lib/python3.X/site-packages/hetskel_msgs/__init__.py -> <prefix>/share/hetskel_msgs/msg
        candidates += [parent / "share" / MSG_PACKAGE / "msg" for parent in Path(spec.origin).parents]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / MSG_PACKAGE / "msg")
    return candidates


def msg_definition_dir() -> Path:
    """Directory holding the hetskel_msgs ``.msg`` files (installed copy first, then the source checkout)."""
    searched = [*_installed_msg_dirs(), _CHECKOUT_MSG_DIR]
    for directory in searched:
        if any(directory.glob("*.msg")):
            return directory
    raise FileNotFoundError(
        f"no {MSG_PACKAGE} .msg files found; looked in: {', '.join(str(d) for d in searched)}. "
        "Run scripts/setup.sh (or colcon build) first."
    )


def hetskel_msg_types(msg_dir: Path | None = None) -> dict:
    """Parse every ``.msg`` of hetskel_msgs into a rosbags types dict (name -> definition)."""
    directory = msg_dir if msg_dir is not None else msg_definition_dir()
    types: dict = {}
    for path in sorted(directory.glob("*.msg")):
        try:
            types.update(get_types_from_msg(path.read_text(encoding="utf-8"), msgtype(path.stem)))
        except Exception as exc:  # rosbags raises several parser error types; all mean a bad file
            raise ValueError(f"{path}: not a valid ROS 2 message definition: {exc}") from exc
    if not types:
        raise FileNotFoundError(f"{directory}: no .msg files")
    return types


def make_typestore(store: Stores = Stores.ROS2_KILTED, msg_dir: Path | None = None) -> Typestore:
    """A rosbags typestore with the standard ROS 2 types of ``store`` plus all hetskel_msgs types."""
    typestore = get_typestore(store)
    typestore.register(hetskel_msg_types(msg_dir))
    return typestore


# numpy dtypes rosbags uses for sequences and arrays of primitive ROS types.
_NUMPY_DTYPES = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64,
}  # fmt: skip


def _bag_value(typestore: Typestore, node: tuple, value: Any, where: str) -> Any:
    """One field value in the form rosbags serialises: nested dataclasses, numpy arrays for primitive arrays."""
    kind, detail = node
    if kind == Nodetype.BASE:
        type_name = detail[0]
        if value is not None:
            return value
        return "" if type_name == "string" else _NUMPY_DTYPES[type_name](0).item()
    if kind == Nodetype.NAME:
        return bag_message_from_dict(typestore, detail, value or {}, where)
    element, length = detail  # ARRAY (fixed length) or SEQUENCE
    items = value if value is not None else ([None] * length if kind == Nodetype.ARRAY else [])
    if element[0] == Nodetype.BASE and element[1][0] in _NUMPY_DTYPES:
        dtype = _NUMPY_DTYPES[element[1][0]]
        return np.asarray([0 if item is None else item for item in items], dtype=dtype)
    return [_bag_value(typestore, element, item, f"{where}[{index}]") for index, item in enumerate(items)]


def bag_message_from_dict(typestore: Typestore, typename: str, data: dict[str, Any], where: str | None = None) -> Any:
    """A rosbags message of ``typename`` from a dict of field values; missing fields get ROS defaults.

    Lets bag tools write messages without rclpy. An unknown key raises an error naming the field path.
    """
    where = where or typename
    fields = dict(typestore.get_msgdef(typename).fields)
    unknown = set(data) - set(fields)
    if unknown:
        raise KeyError(f"{where}: {typename} has no field(s) {sorted(unknown)} (fields: {', '.join(fields)})")
    values = {name: _bag_value(typestore, node, data.get(name), f"{where}.{name}") for name, node in fields.items()}
    return typestore.types[typename](**values)

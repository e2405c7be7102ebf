"""ROS messages to and from plain dicts (YAML/JSON-friendly), as rosidl_runtime_py does where it is installed.

rosidl_runtime_py has no wheel on PyPI, so this small equivalent lets configuration, CLI output, tests and bag
tools speak in plain data. ``message_to_dict`` accepts rclpy messages and rosbags messages alike.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
import re
from typing import Any

import numpy as np

_BOUNDS = re.compile(r"^(?:sequence<(?P<seq>[^,>]+)(?:,\s*\d+)?>|(?P<arr>[^\[]+)\[\d*\]|(?P<plain>.+))$")


def message_class(type_name: str) -> type:
    """rclpy message class of ``pkg/Name`` or ``pkg/msg/Name``, e.g. ``hetskel_msgs/msg/Skeleton``."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"'{type_name}' is not a message type name like 'std_msgs/msg/Header'")
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type '{type_name}' is not installed (is {package} built and sourced?)") from exc


def _element_type(field_type: str) -> tuple[str, bool]:
    """(element type, is a sequence/array) of an rclpy field type string such as ``sequence<float>``."""
    match = _BOUNDS.match(field_type)
    assert match is not None  # the pattern matches every string
    if match["seq"]:
        return match["seq"].strip(), True
    if match["arr"]:
        return match["arr"].strip(), True
    return match["plain"], False


def message_from_dict(message_type: type | str, data: dict[str, Any]) -> Any:
    """Build an rclpy message from a dict of field values (nested dicts and lists for nested messages).

    Fields missing from ``data`` keep their defaults; an unknown key raises an error that names it.
    """
    cls = message_class(message_type) if isinstance(message_type, str) else message_type
    fields = cls.get_fields_and_field_types()
    msg = cls()
    for key, value in data.items():
        if key not in fields:
            raise KeyError(f"{cls.__module__}.{cls.__name__} has no field '{key}' (fields: {', '.join(fields)})")
        element, is_sequence = _element_type(fields[key])
        if "/" not in element:  # primitive or string: the rclpy setter checks range and type
            setattr(msg, key, value)
        elif is_sequence:
            setattr(msg, key, [message_from_dict(element, item) for item in value])
        else:
            setattr(msg, key, message_from_dict(element, value))
    return msg


def message_to_dict(msg: Any) -> Any:
    """Plain Python data (dicts, lists, numbers, strings) of an rclpy or rosbags message."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: message_to_dict(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):  # rosbags messages are dataclasses
        return {
            field.name: message_to_dict(getattr(msg, field.name))
            for field in dataclasses.fields(msg)
            if not field.name.startswith("__")  # rosbags' __msgtype__ is the type name, not a field
        }
    if isinstance(msg, np.ndarray | array.array):
        return np.asarray(msg).tolist()
    if isinstance(msg, list | tuple):
        return [message_to_dict(item) for item in msg]
    if isinstance(msg, np.generic):
        return msg.item()
    return msg

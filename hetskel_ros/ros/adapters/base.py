"""What every input adapter produces, and how it reports bad input.

An adapter turns one ROS message into observations: one person's skeleton at one instant, already in the unified
skeleton. The recognizer node never sees message types; it buffers observations per (input, track) and counts
every dropped message by the reason an ``InputRejected`` names.

``Observation`` and ``InputRejected`` live in the ROS-free runtime (hetskel_ros.runtime.observation), so offline
evaluation runs the same pipeline without ROS; they are re-exported here for adapter authors.

Writing an adapter: subclass :class:`InputAdapter`, set ``kind`` and ``message_type``, implement ``convert`` (or
``convert_parts`` when one message carries several people who can be rejected one by one), and add the kind to
``hetskel_ros.ros.adapters.ADAPTERS``. Kind-specific parameters go in ``parameters``: the node declares each as
``inputs.<input name>.<key>`` with that default and hands the values over in ``InputConfig.params``.

An adapter that holds messages back (the JointState input waits a bounded time for the transform at a message's
stamp) returns nothing for them from ``convert_parts`` and gives them later from ``release(now)``; it calls
``on_ready`` (set by the node) when some may be ready, and the node also polls it every ``poll_period_s``.
``status()`` adds the adapter's own facts to its input's diagnostics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hetskel_ros.runtime.observation import InputRejected, Observation
from hetskel_ros.runtime.recognizer import InputSpec
from hetskel_ros.topology import TopologyError, load_topology

__all__ = ["InputAdapter", "InputConfig", "InputRejected", "Observation", "stamp_seconds"]


@dataclass(frozen=True)
class InputConfig:
    """One configured input (the node's ``inputs.<name>.*`` parameters)."""

    name: str
    topic: str
    kind: str
    topology: str = ""  # expected topology ("" = whatever the messages name, where they name one)
    robot: str = ""  # robot mapping (config/robots) for joint_state inputs
    rate_hz: float = 30.0  # expected message rate: diagnostics, and the cap above which frames are thinned
    view_group: str = ""  # inputs sharing a non-empty view_group see the same people and are fused
    prompt_topology: str = ""  # prompts to use when the model has none for this input's topology
    params: Mapping[str, Any] = field(default_factory=dict)  # kind-specific (InputAdapter.parameters)


def all_or_first_rejection(parts: tuple[list[Observation], list[InputRejected]]) -> list[Observation]:
    """``convert`` for adapters built on ``convert_parts``: a message with any rejected person is rejected whole."""
    observations, rejected = parts
    if rejected:
        raise rejected[0]
    return observations


def stamp_seconds(header: Any) -> float:
    """A std_msgs/Header's stamp as float seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class InputAdapter(ABC):
    """One input kind: ROS messages of ``message_type`` -> observations in the unified skeleton."""

    kind: ClassVar[str]
    message_type: ClassVar[str]  # "pkg/msg/Name", e.g. "hetskel_msgs/msg/SkeletonArray"
    parameters: ClassVar[Mapping[str, Any]] = {}
    drop_reasons: ClassVar[tuple[str, ...]] = ()  # every InputRejected.reason it returns (documented, counted)
    poll_period_s: ClassVar[float] = 0.0  # > 0: the node calls release() this often (messages held back)

    def __init__(self, config: InputConfig, node: Any | None = None):
        """``node`` (an rclpy Node, or None offline) is for adapters that need more than their topic (a URDF from
        robot_description, a logger)."""
        self.config = config
        self.node = node
        self.on_ready: Callable[[], None] | None = None  # the node's: "release() may have something now"

    def dims(self) -> int | None:
        """2 or 3 when known from the configuration (needed to fuse views), None if messages decide."""
        if not self.config.topology:
            return None
        try:
            return load_topology(self.config.topology).dims
        except TopologyError:
            return None

    @property
    def prompt_topology(self) -> str:
        """Topology whose prompts the model uses for this input when it has none of its own (see InputConfig)."""
        return self.config.prompt_topology

    @abstractmethod
    def convert(self, msg: Any) -> list[Observation]:
        """Observations in ``msg`` (possibly none); raises InputRejected naming the reason for a bad message."""

    def convert_parts(self, msg: Any) -> tuple[list[Observation], list[InputRejected]]:
        """Observations and per-person rejections. Override where one bad person must not drop the others."""
        try:
            return self.convert(msg), []
        except InputRejected as exc:
            return [], [exc]

    def spec(self) -> InputSpec:
        """What the recognizer needs to know about this input."""
        cfg = self.config
        return InputSpec(cfg.name, cfg.rate_hz, cfg.view_group, self.dims(), self.prompt_topology, self.downsamples())

    def downsamples(self) -> bool:
        """Whether the recognizer keeps only the sample nearest each model frame time (streams faster than the
        model, such as a robot's joint states at 200-500 Hz) instead of dropping extra frames as "over_rate"."""
        return False

    def holding(self) -> int:
        """Messages held back, not yet released (0 by default)."""
        return 0

    def release(self, now: float) -> tuple[list[list[Observation]], list[InputRejected]]:
        """Observations of messages held back earlier that are due now, one list per message (the recognizer
        observes each message on its own), and rejections; none by default."""
        return [], []

    def status(self) -> tuple[str, dict[str, str]]:
        """A warning for the input's diagnostics ('' = none) and the adapter's own key values."""
        return "", {}

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release subscriptions or files the adapter opened itself."""

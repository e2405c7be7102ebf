"""py_trees behaviours on recognised actions (``hetskel_msgs/ActionArray``), in py_trees_ros' conventions.

Usage::

    from hetskel_ros.ros.bt import ActionsToBlackboard, ActionObserved, WaitForAction

    root = py_trees.composites.Sequence("root", memory=False, children=[
        ActionsToBlackboard(topic_name="actions"),
        ActionObserved("Waving?", ["wave-left-hand", "wave-right-hand"], min_score=0.6, within_s=1.0),
        ...,
    ])
    tree = py_trees.trees.BehaviourTree(root)
    tree.setup(node=node)  # every behaviour gets the rclpy node (subscription, clock)
"""

from hetskel_ros.ros.bt.behaviours import (
    DEFAULT_ACTIONS_KEY,
    DEFAULT_EVENTS_KEY,
    ActionObserved,
    ActionsToBlackboard,
    WaitForAction,
    WaitForActionEvent,
)
from hetskel_ros.ros.bt.subscription import ActionArraySubscriber
from hetskel_ros.ros.bt.tracked_actions import ActionEvent, ActionQuery, TrackedAction, TrackKey

__all__ = [
    "DEFAULT_ACTIONS_KEY",
    "DEFAULT_EVENTS_KEY",
    "ActionArraySubscriber",
    "ActionEvent",
    "ActionObserved",
    "ActionQuery",
    "ActionsToBlackboard",
    "TrackKey",
    "TrackedAction",
    "WaitForAction",
    "WaitForActionEvent",
]

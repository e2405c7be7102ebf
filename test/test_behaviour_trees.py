"""Behaviour trees on recognised actions, with real rclpy over DDS (issue 8).

A publisher node sends ``hetskel_msgs/ActionArray`` as the recogniser will; the py_trees behaviours of
``hetskel_ros.ros.bt`` subscribe through a second node, and the test ticks their tree and checks statuses. The
``action_reactor`` example node runs in-process (its outputs received by a test subscriber) and as its own process.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import py_trees
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from hetskel_msgs.msg import Action, ActionArray, ActionHypothesis
from py_trees.common import ClearingPolicy, Status
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from hetskel_ros.ros.action_reactor import ActionReactor, ReactorConfig
from hetskel_ros.ros.bt import ActionObserved, ActionsToBlackboard, WaitForAction, WaitForActionEvent
from hetskel_ros.ros.bt.tracked_actions import NS_PER_S

_names = itertools.count()


def unique(prefix: str) -> str:
    """Topic/key names unique within this run (tests share one DDS domain)."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture(autouse=True)
def fresh_blackboard() -> Iterator[None]:
    """py_trees' blackboard is process-global: every test starts and ends with an empty one."""
    py_trees.blackboard.Blackboard.clear()
    yield
    py_trees.blackboard.Blackboard.clear()


def to_time(ns: int) -> Time:
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def make_action(
    label: str, score: float, track_id: int = 1, source: str = "kinect", stamp_ns: int = 0, top1: str | None = None
) -> Action:
    """An Action as the recogniser fills it (hypotheses[0] is the top-1; ``top1`` overrides it for 'unknown')."""
    action = Action(track_id=track_id, source=source, label=label, score=score)
    action.header.stamp = to_time(stamp_ns)
    action.window_start = to_time(max(0, stamp_ns - NS_PER_S))
    action.hypotheses = [ActionHypothesis(class_id=0, label=top1 or label, score=score)]
    return action


def make_array(*actions: Action, stamp_ns: int = 0) -> ActionArray:
    msg = ActionArray(actions=list(actions))
    msg.header.stamp = to_time(
        stamp_ns or max((a.header.stamp.sec * NS_PER_S + a.header.stamp.nanosec) for a in actions)
    )
    return msg


class Source:
    """The publishing side: a node with an ActionArray publisher stamping with its own (wall) clock."""

    def __init__(self, ros: Any, topic: str) -> None:
        self.node = ros.node(unique("actions_source"))
        self.pub = self.node.create_publisher(ActionArray, topic, 10)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def send(self, *actions: Action) -> None:
        """Publish one array; actions without a stamp get "now"."""
        now = self.now_ns()
        for action in actions:
            if action.header.stamp.sec == 0 and action.header.stamp.nanosec == 0:
                action.header.stamp = to_time(now)
        self.pub.publish(make_array(*actions))


class Checks:
    """A writer and conditions ticked in order, each on its own, so every status stays readable after the tick.

    (In a Parallel, one FAILURE would stop and invalidate its siblings.)
    """

    def __init__(self, *behaviours: py_trees.behaviour.Behaviour) -> None:
        self.behaviours = behaviours

    def setup(self, **kwargs: Any) -> None:
        for behaviour in self.behaviours:
            behaviour.setup(**kwargs)

    def tick(self) -> None:
        for behaviour in self.behaviours:
            behaviour.tick_once()

    def describe(self) -> str:
        return ", ".join(f"{b.name}: {b.status.value} ({b.feedback_message})" for b in self.behaviours)


def tick_until(ticker: Any, done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Tick at ~100 Hz until ``done()`` (messages arrive asynchronously); TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        ticker.tick()
        if done():
            return
        if time.monotonic() > deadline:
            state = ticker.describe() if isinstance(ticker, Checks) else py_trees.display.unicode_tree(ticker.root)
            raise TimeoutError(f"never reached the expected state: {state}")
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------------- conditions


def test_action_observed_by_label_score_and_track(ros: Any) -> None:
    topic, key = unique("actions"), unique("/bb") + "/actions"
    node = ros.node(unique("bt"))
    source = Source(ros, topic)
    writer = ActionsToBlackboard(topic_name=topic, variable_name=key)
    common = {"within_s": 2.0, "variable_name": key}
    conditions = {
        "wave by track 3": ActionObserved("a", "wave-right-hand", 0.5, track_id=3, **common),
        "wave by any track": ActionObserved("b", ["wave-left-hand", "wave-right-hand"], 0.5, **common),
        "wave by track 4 (wrong track)": ActionObserved("c", "wave-right-hand", 0.5, track_id=4, **common),
        "wave >= 0.95 (below min score)": ActionObserved("d", "wave-right-hand", 0.95, **common),
        "run (not seen)": ActionObserved("e", "run", 0.1, **common),
        "wave from webcam (wrong source)": ActionObserved("f", "wave-right-hand", 0.5, source="webcam", **common),
        "walk >= 0.3 (top-1 under 'unknown', opted in)": ActionObserved("g", "walk", 0.3, track_id=7,
                                                                        below_threshold=True, **common),
        "walk >= 0.3 (top-1 under 'unknown')": ActionObserved("h", "walk", 0.3, track_id=7, **common),
        "wave (top-1 under 'idle', opted in)": ActionObserved("i", "wave-left-hand", 0.3, track_id=8,
                                                              below_threshold=True, **common),
        "idle": ActionObserved("j", "idle", 0.3, track_id=8, **common),
    }
    tree = Checks(writer, *conditions.values())
    tree.setup(node=node)
    ros.wait_for_subscribers(source.pub)

    tree.tick()
    assert writer.status == Status.RUNNING  # no ActionArray yet
    assert all(c.status == Status.FAILURE for c in conditions.values())

    source.send(make_action("wave-right-hand", 0.8, track_id=3), make_action("unknown", 0.4, track_id=7, top1="walk"),
                make_action("idle", 0.6, track_id=8, top1="wave-left-hand"))
    tick_until(tree, lambda: writer.status == Status.SUCCESS)
    statuses = {what: c.status for what, c in conditions.items()}
    assert statuses == {
        "wave by track 3": Status.SUCCESS,
        "wave by any track": Status.SUCCESS,
        "wave by track 4 (wrong track)": Status.FAILURE,
        "wave >= 0.95 (below min score)": Status.FAILURE,
        "run (not seen)": Status.FAILURE,
        "wave from webcam (wrong source)": Status.FAILURE,
        "walk >= 0.3 (top-1 under 'unknown', opted in)": Status.SUCCESS,
        "walk >= 0.3 (top-1 under 'unknown')": Status.FAILURE,  # a label acted on means the action happened
        "wave (top-1 under 'idle', opted in)": Status.FAILURE,  # a still person does no action, whatever the top-1
        "idle": Status.SUCCESS,
    }
    assert "kinect/3 'wave-right-hand' 0.80" in conditions["wave by track 3"].feedback_message

    # The same person now walks: the latest Action per track replaces the wave.
    source.send(make_action("walk", 0.9, track_id=3))
    tick_until(tree, lambda: conditions["wave by track 3"].status == Status.FAILURE)
    assert conditions["wave by any track"].status == Status.FAILURE


def test_table_keeps_latest_action_per_source_and_track(ros: Any) -> None:
    """Arrays from several inputs arriving between two ticks all reach the blackboard, latest per person."""
    topic, key = unique("actions"), unique("/bb") + "/actions"
    node = ros.node(unique("bt"))
    source = Source(ros, topic)
    writer = ActionsToBlackboard(topic_name=topic, variable_name=key)
    tree = Checks(writer)
    tree.setup(node=node)
    ros.wait_for_subscribers(source.pub)

    source.send(make_action("wave-both-hands", 0.7, track_id=1, source="kinect"))
    source.send(make_action("walk", 0.6, track_id=1, source="webcam"), make_action("run", 0.9, 2, "webcam"))
    source.send(make_action("raise-up-both-hands", 0.8, track_id=1, source="kinect"))
    ros.wait_for(lambda: writer.message_count == 3, what="3 ActionArrays at the writer")
    before_tick = node.get_clock().now().nanoseconds
    tree.tick()

    table = py_trees.blackboard.Blackboard.get(key)
    assert {k: e.action.label for k, e in table.items()} == {
        ("kinect", 1): "raise-up-both-hands",
        ("webcam", 1): "walk",
        ("webcam", 2): "run",
    }
    for entry in table.values():
        assert entry.stamp_ns == entry.action.header.stamp.sec * NS_PER_S + entry.action.header.stamp.nanosec
        assert entry.stamp_ns <= entry.received_ns <= before_tick  # receipt time by the node clock

    # A person who leaves gets one last Action, "gone" (it ends the action going on): out of the table at once.
    gone = make_action("gone", 0.0, track_id=2, source="webcam")
    gone.hypotheses, gone.ended = [], "run"
    source.send(gone)
    ros.wait_for(lambda: writer.message_count == 4, what="the 'gone' ActionArray at the writer")
    tree.tick()
    table = py_trees.blackboard.Blackboard.get(key)
    assert set(table) == {("kinect", 1), ("webcam", 1)}


def test_stamps_against_sim_time_and_stale_actions_expire(ros: Any) -> None:
    """'Within the last N s' compares Action.header.stamp with the node clock, which follows /clock under
    use_sim_time; entries older than expiry_s leave the blackboard."""
    topic, key = unique("actions"), unique("/bb") + "/actions"
    node = ros.node(unique("bt_sim"), parameter_overrides=[Parameter("use_sim_time", value=True)])
    source = Source(ros, topic)
    clock_pub = source.node.create_publisher(Clock, "/clock", 10)
    writer = ActionsToBlackboard(topic_name=topic, variable_name=key, expiry_s=2.0)
    waving = ActionObserved("Waving?", "wave-left-hand", 0.5, track_id=2, within_s=1.0, variable_name=key)
    walking = ActionObserved("Walking?", "walk", 0.5, within_s=1.0, variable_name=key)
    tree = Checks(writer, waving, walking)
    tree.setup(node=node)
    ros.wait_for_subscribers(source.pub)
    ros.wait_for_subscribers(clock_pub)

    def set_clock(seconds: float) -> None:
        ns = round(seconds * NS_PER_S)
        clock_pub.publish(Clock(clock=to_time(ns)))
        ros.wait_for(lambda: node.get_clock().now().nanoseconds == ns, what=f"sim time {seconds}")

    set_clock(100.0)
    source.send(make_action("wave-left-hand", 0.9, track_id=2, stamp_ns=round(99.8 * NS_PER_S)))
    unstamped = make_array(make_action("walk", 0.9, track_id=5), stamp_ns=0)
    unstamped.header.stamp = Time()
    source.pub.publish(unstamped)  # no stamp anywhere: judged by receipt time (sim 100.0)
    ros.wait_for(lambda: writer.message_count == 2, what="both arrays at the writer")
    tree.tick()
    assert (waving.status, walking.status) == (Status.SUCCESS, Status.SUCCESS)

    set_clock(100.7)  # wave stamped 0.9 s ago
    tree.tick()
    assert (waving.status, walking.status) == (Status.SUCCESS, Status.SUCCESS)

    set_clock(101.0)  # wave 1.2 s old (receipt would say 1.0 s: the stamp decides); walk received exactly 1.0 s ago
    tree.tick()
    assert (waving.status, walking.status) == (Status.FAILURE, Status.SUCCESS)
    assert set(py_trees.blackboard.Blackboard.get(key)) == {("kinect", 2), ("kinect", 5)}  # stale, not yet expired

    set_clock(101.9)  # wave 2.1 s old: expired; walk 1.9 s
    tree.tick()
    assert walking.status == Status.FAILURE
    assert set(py_trees.blackboard.Blackboard.get(key)) == {("kinect", 5)}

    set_clock(102.5)
    tree.tick()
    assert py_trees.blackboard.Blackboard.get(key) == {}


# --------------------------------------------------------------------------------------------------- waiting


def test_wait_for_action_times_out_then_succeeds_on_a_new_action(ros: Any) -> None:
    topic, key = unique("actions"), unique("/bb") + "/actions"
    node = ros.node(unique("bt"))
    source = Source(ros, topic)
    writer = ActionsToBlackboard(topic_name=topic, variable_name=key)
    wait = WaitForAction("WaitForWave", "wave-both-hands", 0.6, track_id=1, timeout_s=0.4, variable_name=key)
    tree = py_trees.trees.BehaviourTree(py_trees.composites.Sequence("root", memory=False, children=[writer, wait]))
    tree.setup(node=node)
    ros.wait_for_subscribers(source.pub)

    # A wave received before the wait began is not its answer (only_new), and other tracks / low scores never are.
    source.send(make_action("wave-both-hands", 0.9, track_id=1))
    tick_until(tree, lambda: wait.status == Status.RUNNING)
    started = time.monotonic()
    source.send(make_action("wave-both-hands", 0.9, track_id=2), make_action("wave-both-hands", 0.5, track_id=1))
    tick_until(tree, lambda: wait.status != Status.RUNNING, timeout=3.0)
    waited = time.monotonic() - started
    assert wait.status == Status.FAILURE
    assert tree.root.status == Status.FAILURE
    assert 0.35 <= waited < 1.5, waited
    assert "timed out" in wait.feedback_message

    tree.tick()  # the sequence restarts: a new wait begins
    assert wait.status == Status.RUNNING
    source.send(make_action("wave-both-hands", 0.9, track_id=1))
    tick_until(tree, lambda: wait.status == Status.SUCCESS, timeout=2.0)
    assert tree.root.status == Status.SUCCESS


def test_wait_for_action_event_sees_a_start_and_an_end_even_between_two_ticks(ros: Any) -> None:
    """The node decides starts and ends (hysteresis); a tree waits for them, and one tick may cover both."""
    topic, key = unique("actions"), unique("/bb") + "/actions"
    events_key = key + "_events"
    node = ros.node(unique("bt"))
    source = Source(ros, topic)
    writer = ActionsToBlackboard(topic_name=topic, variable_name=key, events_variable_name=events_key)
    started = WaitForActionEvent("WaveStarted", "wave-right-hand", "start", track_id=3, timeout_s=5.0,
                                 events_variable_name=events_key)
    ended = WaitForActionEvent("WaveEnded", "wave-right-hand", "end", track_id=3, timeout_s=5.0,
                               events_variable_name=events_key, matches_variable_name="/ended_event")
    tree = Checks(writer, started, ended)
    tree.setup(node=node)
    ros.wait_for_subscribers(source.pub)
    for behaviour in (started, ended):
        behaviour.initialise()
    tree.tick()
    assert started.status == ended.status == Status.RUNNING

    wave = make_action("wave-right-hand", 0.8, track_id=3)
    wave.started = True
    other = make_action("wave-right-hand", 0.9, track_id=4)  # another person: never the answer
    other.started = True
    stop = make_action("idle", 0.7, track_id=3)
    stop.ended = "wave-right-hand"
    source.send(wave, other)
    source.send(stop)  # both arrays before the next tick: the latest Action of track 3 is idle, yet both events count
    time.sleep(0.3)
    tick_until(tree, lambda: started.status == ended.status == Status.SUCCESS)
    assert "3 start of 'wave-right-hand'" in started.feedback_message
    event = py_trees.blackboard.Blackboard.get("/ended_event")
    assert (event.kind, event.label, event.key) == ("end", "wave-right-hand", ("kinect", 3))
    with pytest.raises(ValueError, match="event must be one of"):
        WaitForActionEvent("bad", "wave", "begin")


# --------------------------------------------------------------------------------------------------- clearing


def test_clearing_policies_follow_py_trees_ros(ros: Any) -> None:
    topic = unique("actions")
    node = ros.node(unique("bt"))
    source = Source(ros, topic)
    writers = {
        policy: ActionsToBlackboard(
            f"w_{policy.name}", topic_name=topic, variable_name=unique("/bb"), clearing_policy=policy
        )
        for policy in ClearingPolicy
    }
    for writer in writers.values():
        writer.setup(node=node)
    ros.wait_for_subscribers(source.pub, count=len(writers))

    def tick_all() -> dict[ClearingPolicy, Status]:
        for writer in writers.values():
            writer.tick_once()
        return {policy: writer.status for policy, writer in writers.items()}

    def wait_messages(n: int) -> None:
        ros.wait_for(lambda: all(w.message_count == n for w in writers.values()), what=f"{n} message(s) at writers")

    assert set(tick_all().values()) == {Status.RUNNING}
    source.send(make_action("walk", 0.9))
    wait_messages(1)
    assert set(tick_all().values()) == {Status.SUCCESS}
    assert tick_all() == {  # nothing new since: only NEVER keeps using the old message
        ClearingPolicy.ON_INITIALISE: Status.RUNNING,
        ClearingPolicy.ON_SUCCESS: Status.RUNNING,
        ClearingPolicy.NEVER: Status.SUCCESS,
    }
    # A message that arrives while the behaviours are not running: ON_INITIALISE discards it on entry.
    for writer in writers.values():
        writer.stop(Status.INVALID)
    source.send(make_action("run", 0.9))
    wait_messages(2)
    assert tick_all() == {
        ClearingPolicy.ON_INITIALISE: Status.RUNNING,
        ClearingPolicy.ON_SUCCESS: Status.SUCCESS,
        ClearingPolicy.NEVER: Status.SUCCESS,
    }
    # The per-track tables persist under every policy; ON_INITIALISE never took in the 'run' that came before entry.
    labels = {
        p: py_trees.blackboard.Blackboard.get(w.variable_name)[("kinect", 1)].action.label for p, w in writers.items()
    }
    assert labels == {
        ClearingPolicy.ON_INITIALISE: "walk",
        ClearingPolicy.ON_SUCCESS: "run",
        ClearingPolicy.NEVER: "run",
    }


def test_setup_and_argument_errors_name_the_behaviour() -> None:
    with pytest.raises(KeyError, match=r"'Waving\?'.*tree.setup\(node="):
        ActionObserved("Waving?", "wave-left-hand").setup()
    with pytest.raises(RuntimeError, match=r"'Waving2\?' ticked before setup"):
        ActionObserved("Waving2?", "wave-left-hand").tick_once()
    with pytest.raises(ValueError, match=re.escape("Sure?: min_score must be in [0, 1], got 1.5")):
        ActionObserved("Sure?", "wave-left-hand", min_score=1.5)
    with pytest.raises(ValueError, match=re.escape("Empty?: label must be a non-empty")):
        ActionObserved("Empty?", [])
    with pytest.raises(ValueError, match="Wait: timeout_s must be positive"):
        WaitForAction("Wait", "wave-left-hand", timeout_s=0.0)
    with pytest.raises(ValueError, match=re.escape("parameter 'window_s' = 0.0 is out of range")):
        ReactorConfig(window_s=0.0)
    with pytest.raises(ValueError, match="parameter 'greet_labels' needs at least one"):
        ReactorConfig(greet_labels=())


# --------------------------------------------------------------------------------------------------- reactor


class Outputs:
    """Test subscriber on the reactor's speech and cmd_vel topics."""

    def __init__(self, ros: Any, speech_topic: str, cmd_vel_topic: str) -> None:
        self.node = ros.node(unique("reactor_listener"))
        self.lock = threading.Lock()
        self.speech: list[str] = []
        self.twists: list[tuple[float, float, float]] = []  # (monotonic time, linear.x, angular.z)
        self.subs = [
            self.node.create_subscription(String, speech_topic, self._on_speech, 10),
            self.node.create_subscription(Twist, cmd_vel_topic, self._on_twist, 100),
        ]

    def _on_speech(self, msg: String) -> None:
        with self.lock:
            self.speech.append(msg.data)

    def _on_twist(self, msg: Twist) -> None:
        with self.lock:
            self.twists.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def snapshot(self) -> tuple[list[str], list[tuple[float, float, float]]]:
        with self.lock:
            return list(self.speech), list(self.twists)


ReactorParts = tuple[ActionReactor, Source, Outputs]


def start_reactor(ros: Any, **overrides: Any) -> ReactorParts:
    """An in-process ActionReactor on unique topics, fast settings (20 Hz ticks, 0.5 s window, 0.3 s turn)."""
    topics = {name: unique(name) for name in ("actions", "speech", "cmd_vel")}
    params = {
        "actions_topic": topics["actions"],
        "speech_topic": topics["speech"],
        "cmd_vel_topic": topics["cmd_vel"],
        "tick_hz": 20.0,
        "window_s": 0.5,
        "min_score": 0.6,
        "turn_speed": 0.6,
        "turn_s": 0.3,
        "greet_cooldown_s": 30.0,
        **overrides,
    }
    reactor = ActionReactor(
        unique("reactor"), context=ros.context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    ros.add_node(reactor)
    source = Source(ros, topics["actions"])
    outputs = Outputs(ros, topics["speech"], topics["cmd_vel"])
    ros.wait_for_subscribers(source.pub)
    for sub in outputs.subs:
        ros.wait_for_publishers(sub)
    return reactor, source, outputs


def send_for(source: Source, seconds: float, *actions: Callable[[], Action]) -> None:
    """Publish fresh actions at 10 Hz for ``seconds``, like a recogniser while the gesture lasts."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        source.send(*(make() for make in actions))
        time.sleep(0.1)


def test_reactor_greets_a_wave_with_a_short_turn_then_stops_on_raised_hands(ros: Any) -> None:
    reactor, source, outputs = start_reactor(ros)

    # Below min_score (0.6), and an action it does not react to: nothing is said or commanded.
    send_for(source, 0.4, lambda: make_action("wave-left-hand", 0.4, track_id=9), lambda: make_action("run", 0.9, 8))
    assert outputs.snapshot() == ([], [])

    # A wave: "Hello!" once, a turn at turn_speed for ~turn_s, then a zero Twist.
    send_for(source, 0.6, lambda: make_action("wave-left-hand", 0.9, track_id=4))
    ros.wait_for(lambda: any(z == 0.0 for _, _, z in outputs.snapshot()[1]), what="zero Twist after the turn")
    speech, twists = outputs.snapshot()
    assert speech == ["Hello!"]
    turning = [t for t, _, z in twists if z == pytest.approx(0.6)]
    assert len(turning) >= 3
    first_zero = next(t for t, _, z in twists if z == 0.0)
    assert first_zero > turning[-1]
    assert 0.2 <= first_zero - turning[0] <= 0.8  # turn_s = 0.3 at 20 Hz ticks
    assert all(x == 0.0 for _, x, _ in twists)  # it only ever turns in place

    # The same person keeps waving: greeted once per cooldown, no further motion.
    send_for(source, 0.4, lambda: make_action("wave-left-hand", 0.9, track_id=4))
    assert outputs.snapshot() == (speech, twists)

    # Both hands raised: "Stopping" once, and zero Twists on every tick while it lasts.
    send_for(source, 0.5, lambda: make_action("raise-up-both-hands", 0.8, track_id=4))
    ros.wait_for(lambda: "Stopping" in outputs.snapshot()[0], what="'Stopping'")
    speech, after = outputs.snapshot()
    assert speech == ["Hello!", "Stopping"]
    stop_twists = after[len(twists) :]
    assert len(stop_twists) >= 5
    assert all((x, z) == (0.0, 0.0) for _, x, z in stop_twists)
    assert reactor.behaviours.stop.status == Status.RUNNING


def test_reactor_stop_preempts_a_greeting_turn(ros: Any) -> None:
    reactor, source, outputs = start_reactor(ros, turn_s=5.0)
    source.send(make_action("wave-both-hands", 0.9, track_id=1))
    ros.wait_for(lambda: outputs.snapshot()[1], what="the greeting turn")
    source.send(make_action("raise-up-both-hands", 0.9, track_id=2))
    ros.wait_for(lambda: "Stopping" in outputs.snapshot()[0], what="'Stopping'")
    time.sleep(0.2)
    speech, twists = outputs.snapshot()
    assert speech == ["Hello!", "Stopping"]
    first_zero = next(i for i, (_, _, z) in enumerate(twists) if z == 0.0)
    assert twists[first_zero][0] - twists[0][0] < 1.0  # the 5 s turn was cut short
    assert all(z == 0.0 for _, _, z in twists[first_zero:])  # and never resumed
    assert reactor.behaviours.stop.status == Status.RUNNING


def test_action_reactor_process_retargeted_by_parameters(ros: Any) -> None:
    """The `action_reactor` console script (what `ros2 run hetskel_ros action_reactor` runs), other labels."""
    executable = Path(sys.executable).parent / "action_reactor"
    assert executable.exists(), f"{executable} missing: reinstall the package (bash scripts/setup.sh)"
    topics = {name: unique(name) for name in ("actions", "speech", "cmd_vel")}
    params = [f"{name}_topic:={topic}" for name, topic in topics.items()]
    params += ["greet_labels:=[run]", "greeting:=Hi runner", "turn_speed:=0.0"]
    process = subprocess.Popen(
        [str(executable), "--ros-args", *itertools.chain.from_iterable(("-p", p) for p in params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        source = Source(ros, topics["actions"])
        outputs = Outputs(ros, topics["speech"], topics["cmd_vel"])
        ros.wait_for_subscribers(source.pub, timeout=20.0)
        ros.wait_for_publishers(outputs.subs[0], timeout=20.0)
        send_for(source, 0.3, lambda: make_action("wave-right-hand", 0.9, track_id=1))  # not a greet label any more
        assert outputs.snapshot()[0] == []
        source.send(make_action("run", 0.9, track_id=1))
        ros.wait_for(lambda: outputs.snapshot()[0], what="the greeting")
        assert outputs.snapshot() == (["Hi runner"], [])  # turn_speed 0: no motion
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert "reacting to ['run'] (greet) and ['raise-up-both-hands'] (stop)" in output


def test_action_reactor_process_rejects_a_bad_parameter_by_name() -> None:
    executable = Path(sys.executable).parent / "action_reactor"
    run = subprocess.run(
        [str(executable), "--ros-args", "-p", "window_s:=0.0"], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 1
    assert "action_reactor: parameter 'window_s' = 0.0 is out of range (needs window_s > 0)" in run.stderr
    assert "Traceback" not in run.stderr

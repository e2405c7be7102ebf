"""Start the action recognizer (and optionally an RGB pose pipeline or a bag player).

    ros2 launch hetskel_ros recognize.launch.py
    ros2 launch hetskel_ros recognize.launch.py model:=/path/to/model.hetskel backend:=onnxruntime use_sim_time:=true
    ros2 launch hetskel_ros recognize.launch.py rgb:=true video:=/path/to/video.mp4
    ros2 launch hetskel_ros recognize.launch.py bag:=/path/to/bag use_sim_time:=true
    ros2 launch hetskel_ros recognize.launch.py bag:=/path/to/bag use_sim_time:=true exit_on_bag_end:=true

Only the public launch / launch_ros API is used. Without a ROS 2 install (no `launch` package), `hetskel-launch`
(hetskel_ros/ros/launcher.py) starts the same nodes with the same files and arguments.
"""

# (isort would take `launch` for this repository's launch/ folder and split the ROS imports apart)
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "hetskel_ros"


def check_parameter_files(context, *_args, **_kwargs) -> list:
    """launch_ros only warns about a parameter file that does not exist and starts the node on defaults: stop the
    launch instead, with one line naming the argument (ros2 launch then exits with status 1)."""
    names = ["config", "rgb_config"] if LaunchConfiguration("rgb").perform(context).lower() == "true" else ["config"]
    for name in names:
        path = LaunchConfiguration(name).perform(context)
        try:
            open(path, encoding="utf-8").close()
        except OSError as exc:
            raise RuntimeError(f"launch argument {name}: parameter file {path}: {exc.strerror}") from None
    return []


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    config = LaunchConfiguration("config")
    rgb_config = LaunchConfiguration("rgb_config")
    namespace = LaunchConfiguration("namespace")
    use_sim_time = LaunchConfiguration("use_sim_time")
    rgb = LaunchConfiguration("rgb")
    bag = LaunchConfiguration("bag")
    # model and backend stay strings whatever they look like (a path "1.hetskel" is not a number)
    overrides = {"model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                 "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                 "use_sim_time": use_sim_time}

    arguments = [
        DeclareLaunchArgument("config", default_value=PathJoinSubstitution([share, "config", "recognize.yaml"]),
                              description="recognizer parameter file"),
        DeclareLaunchArgument("model", default_value="",
                              description="model bundle ('' = the last live swap's, else the shipped model)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="inference backend, e.g. onnxruntime ('' = the config's order)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("rgb", default_value="false",
                              description="also start video_source and mediapipe_pose (RGB -> 2D skeletons)"),
        DeclareLaunchArgument("video", default_value="0", description="video_source: a video file or camera index"),
        DeclareLaunchArgument("rgb_config", default_value=PathJoinSubstitution([share, "config", "recognize_rgb.yaml"]),
                              description="recognizer inputs for the RGB pipeline (rgb:=true)"),
        DeclareLaunchArgument("bag", default_value="", description="replay this rosbag2 bag into the recognizer"),
        DeclareLaunchArgument("exit_on_bag_end", default_value="false",
                              description="end the launch once bag_player has played the bag"),
    ]

    recognizer = Node(package=PACKAGE, executable="recognizer", name="recognizer", namespace=namespace,
                      parameters=[config, overrides], output="screen", emulate_tty=True,
                      condition=UnlessCondition(rgb))
    recognizer_rgb = Node(package=PACKAGE, executable="recognizer", name="recognizer", namespace=namespace,
                          parameters=[config, rgb_config, overrides], output="screen", emulate_tty=True,
                          condition=IfCondition(rgb))
    video_source = Node(package=PACKAGE, executable="video_source", name="video_source", namespace=namespace,
                        parameters=[{"source": ParameterValue(LaunchConfiguration("video"), value_type=str),
                                     "use_sim_time": use_sim_time}],
                        remappings=[("image", "rgb/image")], output="screen", condition=IfCondition(rgb))
    mediapipe_pose = Node(package=PACKAGE, executable="mediapipe_pose", name="mediapipe_pose", namespace=namespace,
                          parameters=[{"use_sim_time": use_sim_time}],
                          remappings=[("image", "rgb/image"), ("image/compressed", "rgb/image/compressed"),
                                      ("skeletons", "rgb/skeletons"), ("world_skeletons", "rgb/world_skeletons")],
                          output="screen",
                          condition=IfCondition(rgb))
    bag_player = Node(package=PACKAGE, executable="bag_player", name="bag_player", namespace=namespace,
                      parameters=[{"bag": ParameterValue(bag, value_type=str)}], output="screen",
                      condition=IfCondition(PythonExpression(["'", bag, "' != ''"])))
    # exit_on_bag_end: a second for the recognizer to handle the bag's last messages, then the whole launch ends
    # (with use_sim_time nothing else would end it once the bag's clock stops)
    bag_end = RegisterEventHandler(
        OnProcessExit(target_action=bag_player,
                      on_exit=[TimerAction(period=1.0, actions=[EmitEvent(event=Shutdown(reason="the bag ended"))])]),
        condition=IfCondition(LaunchConfiguration("exit_on_bag_end")))
    checks = OpaqueFunction(function=check_parameter_files)
    return LaunchDescription([*arguments, checks, recognizer, recognizer_rgb, video_source, mediapipe_pose, bag_player,
                              bag_end])

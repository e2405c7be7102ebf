"""Labelled rosbag2 bags of skeleton streams: make them, replay them, and score the recognizer on them.

``hetskel-bag make|eval|play`` (cli), the ``bag_player`` node (player), offline and live evaluation (offline, live,
evaluate, report) and ``hetskel-demo`` (demo). Metrics live in the ROS-free hetskel_ros.runtime.detection_metrics.
"""

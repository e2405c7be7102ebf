"""ROS 2 nodes, input adapters and launch glue."""

"""depth_nodes: dense metric depth from camera streams for ROS 2."""

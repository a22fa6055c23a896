"""`depth-nodes <command> ...`: one entry point for the package's command-line tools.

Each command is also runnable as `python -m <module>`; this only dispatches.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    'build-engine': ('depth_nodes.build_engine', 'build a TensorRT engine from an ONNX model'),
    'bag': ('depth_nodes.dds_bag', 'play a bag over DDS / record topics (no rosbag2 CLI)'),
    'process-bag': ('depth_nodes.process_bag',
                    'run a method over a recorded bag offline into a new rosbag2'),
    'bokeh': ('depth_nodes.bokeh', 'synthetic depth of field for an image + depth file pair'),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f'  {name:<{width}}  {help_}' for name, (_, help_) in COMMANDS.items()]
        print('usage: depth-nodes <command> [args...]\n\ncommands:\n' + '\n'.join(lines))
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == '__main__':
    sys.exit(main())

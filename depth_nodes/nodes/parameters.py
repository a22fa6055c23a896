"""A node's parameters from a table of depth_nodes.parameters.Parameter: declared with their
ROS descriptors, checked on change, and read per frame from a dict kept current.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from depth_nodes.parameters import START_ONLY, Parameter


def descriptor(p: Parameter) -> ParameterDescriptor:
    description = p.description
    if p.choices:
        description += f" (one of: {', '.join(p.choices)})"
    d = ParameterDescriptor(description=description, read_only=p.applies == START_ONLY,
                            dynamic_typing=p.dynamic_typing)
    if p.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=float(p.float_range[0]),
                                                     to_value=float(p.float_range[1]),
                                                     step=0.0)]
    if p.int_range:
        d.integer_range = [IntegerRange(from_value=p.int_range[0], to_value=p.int_range[1],
                                        step=1)]
    return d


class NodeParameters(Mapping):
    """The node's values of a parameter table, declared at construction. Reading is a dict
    lookup (frames read several per frame); the dict follows every accepted change."""

    def __init__(self, node: Node, table: Iterable[Parameter]):
        self.table = {p.name: p for p in table}
        self._node = node
        for p in self.table.values():
            default = list(p.default) if isinstance(p.default, (list, tuple)) else p.default
            node.declare_parameter(p.name, default, descriptor(p))
        self._values = {name: node.get_parameter(name).value for name in self.table}
        node.add_post_set_parameters_callback(self._changed)

    def _changed(self, params) -> None:
        for p in params:
            if p.name in self._values:
                self._values[p.name] = p.value

    def check(self, params) -> str | None:
        """Why a change of ``params`` is refused by the table (a choice), or None."""
        for p in params:
            entry = self.table.get(p.name)
            if entry is not None and entry.choices:
                try:
                    entry.check(p.value)
                except ValueError as exc:
                    return str(exc)
        return None

    def with_changes(self, params) -> dict[str, Any]:
        """The values once ``params`` (being set) apply."""
        return {**self._values, **{p.name: p.value for p in params if p.name in self.table}}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

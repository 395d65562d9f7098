"""Where each value of a YAML document is: so a catalogue error can name its line.

PyYAML's composer keeps the position of every node; :func:`lines` walks the node tree once and
maps each path (``("checks", 2, "require")``) to the 1-based line it starts on.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

Path = tuple[str | int, ...]


def lines(text: str) -> dict[Path, int]:
    """The starting line of every mapping value and sequence item of the document ``text``."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    found: dict[Path, int] = {}
    if root is None:
        return found
    stack: list[tuple[Path, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        found.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    # The key's line: a block value starts on the line after its key.
                    found[(*path, key.value)] = key.start_mark.line + 1
                    stack.append(((*path, key.value), value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append(((*path, i), item))
    return found


def line_of(positions: dict[Path, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, or of its nearest enclosing value that has one."""
    p: Path = tuple(path)
    while p:
        if p in positions:
            return positions[p]
        p = p[:-1]
    return positions.get(())

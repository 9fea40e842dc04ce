"""The validator's rule on the disk layout: nothing after C:. winarm grows the disk when DISK_SIZE is raised and
Windows extends C: over the space after it (diskpart ``extend``), which only works when C: is the disk's last
partition; a recovery partition after C: (the layout Microsoft's samples show) would stop it.

Called by :func:`winarm.answer.validate.validate`; it works on the validator's parsed tree and only adds findings.
"""

from __future__ import annotations

from collections.abc import Callable

from winarm.answer.xml_node import Node
from winarm.answer.xml_node import child_text as _text
from winarm.answer.xml_node import items as _items
from winarm.answer.xml_node import walk as _walk

__all__ = ["check_layout"]


def _c_partition(disk: Node) -> Node | None:
    """The ModifyPartition of ``disk`` that gives its partition the letter C, or None."""
    return next((m for m in _items(disk, "ModifyPartitions", "ModifyPartition")
                 if _text(m, "Letter").upper().rstrip(":") == "C"), None)


def check_layout(root: Node, add: Callable[[int, str, str], None]) -> None:
    """Add a ``partition-after-c`` finding through ``add(line, rule, message)`` for each ``Disk`` whose partition
    lettered C is not the last one it creates (partition IDs count the created partitions in Order). Raises
    nothing."""
    for disk in (n for n in _walk(root) if n.name == "Disk"):
        created = _items(disk, "CreatePartitions", "CreatePartition")
        c_drive = _c_partition(disk)
        if not created or c_drive is None:
            continue
        orders = [_text(p, "Order") for p in created]
        if not all(order.isdigit() for order in orders):
            continue
        last = len(created)
        partition = _text(c_drive, "PartitionID")
        if partition.isdigit() and int(partition) != last:
            add(c_drive.line, "partition-after-c",
                f"C: is partition {partition} of {last}: a partition after C: keeps Windows from extending C: over "
                "a grown disk (DISK_SIZE); create C: last")

"""The whole contract between winarm and a guest, in one place.

What the guest says (phase markers and details), the files and addresses it uses (the share, its ready file,
the answer medium's marker and driver script), and what winarm does for it at boot (the key that answers the
install CD's prompt). The answer file tells Windows to use these; the test guest plays Windows with the same
names; the supervisor listens for them. Nothing here imports the rest of winarm.
"""

from __future__ import annotations

MARKER_PREFIX = "WINARM-PHASE"
"""``WINARM-PHASE <name> [detail]``: the guest reached a phase boundary."""
EVENT_PREFIX = "WINARM-EVENT"
"""``WINARM-EVENT <name> [detail]``: a detail worth recording, not a phase boundary."""
DESKTOP_READY = "desktop-ready"
"""The marker sent at every logon, once the desktop is there."""
INSTALL_DONE_MARKERS = ("ready", DESKTOP_READY)
"""Markers that say the unattended install has finished (its passes need the answer medium no more)."""
INSTALL_DONE_AFTER_DISK_BOOTS = 2
"""Without markers (real Windows): specialize runs in the first boot from the disk, oobeSystem and the first
logon in the second, so from the second disk boot on the next start needs no answer medium."""

SHARE_ADDRESS = "10.0.2.4"
"""Where the guest reaches the share (``\\\\10.0.2.4\\Data``, also ``\\\\host.lan\\Data``), on TCP 445."""
SHARE_HOSTNAME = "host.lan"
SHARE_PORT = 445
DESKTOP_READY_FILE = ".winarm-desktop-ready"
"""Written to the first share at each logon; winarm takes it as the ``desktop-ready`` marker and deletes it."""

MEDIUM_MARKER = "winarm.marker"
"""The file at the root of the answer medium that the driver script finds its drive letter by."""
MEDIUM_SCRIPT = r"winarm\install-drivers.cmd"
MEDIUM_DRIVERS_DIR = r"winarm\drivers"

CD_PROMPT = "Press any key to boot from CD or DVD"
"""What the install CD's EFI loader prints before it falls through to the next boot option."""
KEY_FOR_CD_PROMPT = "spc"
"""The key (a QEMU qcode) pressed at that prompt: harmless anywhere else."""

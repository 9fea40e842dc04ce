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

REPORT_ADDRESS = "10.0.2.5"
"""The guest channel: where the guest reports (``POST http://10.0.2.5/report/<name>``), relayed by QEMU's user
network to a socket of the daemon's in the run directory. It needs only the network driver: Windows for ARM64
has no COM port under QEMU, so nothing Windows says can come over the serial console."""
REPORT_PORT = 80
REPORT_PATH = "/report/"
REPORT_URL = f"http://{REPORT_ADDRESS}{REPORT_PATH}"
"""The report's name follows: ``http://10.0.2.5/report/desktop-ready``."""
REPORT_DRIVERS = "drivers"
"""The driver step ended; body ``pass <pass>`` then one ``driver <folder> <pnputil exit code>`` line a driver."""
PNPUTIL_SUCCESS = (0, 259, 3010, 1641)
"""The pnputil exit codes that mean a driver went in: done, nothing to do (259), done but a restart is needed
(3010, 1641). The driver script counts them as success and the ``drivers`` report carries them as they came."""
REPORT_FIRST_LOGON = "first-logon"
"""The first logon's commands started (the install's last pass)."""
REPORT_HOOK = "hook"
"""A post-install hook ran; body ``hook <name> <exit code>`` lines."""
REPORT_SHUTDOWN = "shutdown"
"""The guest was asked to shut down (by itself, not by winarm)."""
REPORT_PRODUCT_KEY = "product-key"
"""The user's product key was given to ``slmgr.vbs /ipk`` at the first logon; body ``code <its exit code>``
(never the key)."""
REPORT_NAMES = (REPORT_DRIVERS, REPORT_FIRST_LOGON, "desktop-ready", REPORT_HOOK, REPORT_SHUTDOWN,
                REPORT_PRODUCT_KEY)
"""The only names the channel accepts; anything else is refused and logged."""
PHASE_REPORTS = (REPORT_FIRST_LOGON, "desktop-ready")
"""Reports that start a phase of their name (the others confirm the phase they arrive in)."""
REPORT_MAX_BODY = 4096
"""The largest body accepted: ASCII lines ``KEY VALUE``, at most 64 of them."""
MEDIUM_REPORT_SCRIPT = r"winarm\report.vbs"
"""On the answer medium: the script that sends one report, hidden and with retries (copied to the disk in
specialize, so later logons have it once the medium is gone)."""
REPORT_SCRIPT = r"%WINDIR%\Setup\Scripts\winarm-report.vbs"
"""Where specialize puts that script."""

SETUP_PASSES = ("windowsPE", "specialize", "oobeSystem")
"""Setup's passes by boot: from the CD, the first boot from the disk, the second. During an install winarm names
each boot so (``source: boot-order``) until a report from that boot confirms it (``source: guest``)."""

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
MEDIUM_PRODUCT_KEY_SCRIPT = r"winarm\product-key.cmd"
"""On the answer medium: the first-logon script that installs the product key and reports its exit code."""
MEDIUM_PRODUCT_KEY_FILE = r"winarm\product-key.txt"
"""On the answer medium: the product key alone (so it is in no command line of the answer file)."""

CD_PROMPT = "Press any key to boot from CD or DVD"
"""What the install CD's EFI loader prints before it falls through to the next boot option."""
KEY_FOR_CD_PROMPT = "spc"
"""The key (a QEMU qcode) pressed at that prompt: harmless anywhere else."""

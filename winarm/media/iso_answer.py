"""The user's ISO's own answer file, and why it matters: Setup may take it instead of winarm's.

Windows Setup, when not told which answer file to use, searches for one in the order Microsoft documents as the
"implicit answer file search order" (Windows Setup Automation Overview): the registry's ``UnattendFile``;
``%WINDIR%\\Panther\\Unattend`` (not when Setup starts from Windows PE); ``%WINDIR%\\Panther``; the root of
removable read/write media, in drive-letter order; the root of removable read-only media, in drive-letter order;
the ``\\Sources`` folder of the Windows distribution; ``%SYSTEMDRIVE%``. In the windowsPE pass the file must be
named ``Autounattend.xml``.

The user's ISO and winarm's answer medium are both read-only removable media (CDs on USB, see
:mod:`winarm.qemu.argv`), so an ``Autounattend.xml`` at the ISO's root competes with winarm's by drive letter,
which Windows PE assigns and winarm does not choose: Setup may use the ISO's instead. One in the ISO's
``\\Sources`` comes after every removable medium's root and loses to winarm's, so only the root is looked at
(:attr:`winarm.media.iso.IsoInfo.answer_files`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from winarm.media.iso import IsoInfo


def answer_file_warning(info: IsoInfo, iso: Path) -> str | None:
    """One line saying that the ISO at ``iso`` carries its own answer file at its root and what that does, or None
    when it carries none."""
    if not info.answer_files:
        return None
    names = " and ".join(info.answer_files)
    return (f"ISO {str(iso)!r} has its own answer file at its root ({names}): Windows Setup searches the root of "
            "every removable medium for Autounattend.xml by drive letter, so it may use that file instead of "
            "winarm's answer medium and install differently or ask questions; use an ISO without it (an original "
            "Microsoft ISO)")


def warn_answer_file(info: IsoInfo | None, iso: Path | None, out: TextIO | None = None) -> bool:
    """Print :func:`answer_file_warning` as one ``winarm: warning:`` line on ``out`` (stderr by default) when
    there is one; True when it was printed."""
    warning = answer_file_warning(info, iso) if info is not None and iso is not None else None
    if warning is not None:
        print(f"winarm: warning: {warning}", file=out or sys.stderr, flush=True)
    return warning is not None

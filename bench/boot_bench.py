#!/usr/bin/env python3
"""The boot benchmark: ``winarm bench`` with defaults for the container and CI.

With ``--iso`` (or ``BOOT``) it is ``winarm bench`` on that ISO as it is. Without, it runs on the
Windows-shaped testbed ISO with the placeholder virtio-win tree (both built and cached by winarm), 1 GiB of
RAM, no TPM and no Secure Boot (the testbed's loader is unsigned), comparing where the non-boot-critical
drivers are installed: ``drivers=windowsPE``, ``drivers=specialize`` and ``drivers=firstlogon``, each run the
whole install (``--from-scratch``, the only mode in which the drivers' pass matters). Every other option is
passed on to ``winarm bench``. Usage:
    python bench/boot_bench.py [--runs 3] [--json FILE] [--chart FILE] [any winarm bench option]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTBED_VARIANTS = ["drivers=windowsPE", "drivers=specialize", "drivers=firstlogon"]


def winarm_output(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "winarm", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def main(argv: list[str]) -> int:
    from winarm.cli.main import main as winarm_main

    args = list(argv)
    if not any(a == "--iso" or a.startswith("--iso=") for a in args) and not os.environ.get("BOOT"):
        iso = winarm_output("testbed", "build")
        drivers = winarm_output("testbed", "drivers")
        args = ["--iso", iso, "--drivers", drivers, "--set", "ram=1G,cpus=2,disk_size=1G,tpm=no,secure_boot=no",
                "--from-scratch", *args]
        if not any(a == "--variant" or a.startswith("--variant=") for a in args):
            for variant in TESTBED_VARIANTS:
                args += ["--variant", variant]
    try:
        winarm_main(["bench", *args], prog_name="boot_bench.py")
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))

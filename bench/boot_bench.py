#!/usr/bin/env python3
"""The boot benchmark: ``winarm bench`` with defaults for the container and CI.

With ``--iso`` (or ``BOOT``) it is ``winarm bench`` on that ISO as it is. Without, it runs on the
Windows-shaped testbed ISO with the placeholder virtio-win tree (both built and cached by winarm), 1 GiB of
RAM, no TPM and no Secure Boot (the testbed's loader is unsigned), comparing where the non-boot-critical
drivers are installed: ``drivers=windowsPE``, ``drivers=specialize`` and ``drivers=firstlogon``, each run the
whole install (``--from-scratch``, the only mode in which the drivers' pass matters). Every other option is
passed on to ``winarm bench``. ``--smoke`` is one whole install of ``drivers=specialize`` on the testbed, which
checks that the result's median total is a positive number. Usage:
    python bench/boot_bench.py [--runs 3] [--json FILE] [--chart FILE] [--smoke] [any winarm bench option]
"""

from __future__ import annotations

import json
import os
import sys

from _common import BenchError, sane, winarm_output, workspace

TESTBED_VARIANTS = ["drivers=windowsPE", "drivers=specialize", "drivers=firstlogon"]
SMOKE_VARIANT = "drivers=specialize"


def given(args: list[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def bench_args(argv: list[str], variants: list[str]) -> list[str]:
    """``winarm bench``'s arguments: ARGV, on the testbed with its variants unless an ISO is given."""
    args = list(argv)
    if given(args, "--iso") or os.environ.get("BOOT"):
        return args
    iso = winarm_output("testbed", "build")
    drivers = winarm_output("testbed", "drivers")
    args = ["--iso", iso, "--drivers", drivers, "--set", "ram=1G,cpus=2,disk_size=1G,tpm=no,secure_boot=no",
            "--from-scratch", *args]
    if not given(args, "--variant"):
        for variant in variants:
            args += ["--variant", variant]
    return args


def winarm_bench(args: list[str]) -> int:
    """``winarm bench ARGS`` in this process; its exit status."""
    from winarm.cli.main import main as winarm_main

    try:
        winarm_main(["bench", *args], prog_name="boot_bench.py")
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def smoke(argv: list[str]) -> int:
    """One whole install of one variant, its result read back and its median total checked."""
    with workspace("winarm-boot-smoke-") as work:
        out = work / "result.json"
        code = winarm_bench([*bench_args([*argv, "--runs", "1", "--json", str(out), "--workdir", str(work / "w")],
                                         [SMOKE_VARIANT])])
        if code != 0:
            return code
        result = json.loads(out.read_text())
        for variant in result["variants"]:
            total = variant["summary"].get("total", {}).get("median")
            if total is None:
                raise BenchError(f"{variant['name']}: no successful run")
            print(f"smoke: {variant['name']}: median total {sane('the median total', float(total)):.1f} s")
    return 0


def main(argv: list[str]) -> int:
    if "--smoke" in argv:
        return smoke([a for a in argv if a != "--smoke"])
    return winarm_bench(bench_args(argv, TESTBED_VARIANTS))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

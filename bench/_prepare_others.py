"""The two ways other launchers prepare Windows media, for ``prepare_bench.py`` to time beside winarm's: a full
remaster (``7z x``, the answer files copied in, ``genisoimage -udf``) and a FAT overlay (``7z e`` of the install
image, its editions read with wimlib, ``mkfs.fat`` + ``mcopy``); the tools' versions, and notes on why each
step is done the way it is. Every function raises BenchError (from :func:`_common.run`) when a tool fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from _common import GiB, MiB, run, timed


def gib(size: float) -> str:
    return f"{size:g} GiB"


def remaster(iso: Path, answer_tree: Path, scratch: Path) -> dict[str, float]:
    """Extract the whole ISO (7z reads its UDF tree), add the answer files, rebuild it with genisoimage -udf and
    the EFI El Torito entry Microsoft's media boot from. Seconds by step."""
    tree = scratch / "tree"
    out = scratch / "remastered.iso"
    times: dict[str, float] = {}
    times["extract"], _ = timed(lambda: run(["7z", "x", "-y", "-bd", f"-o{tree}", str(iso)]))
    times["add"], _ = timed(lambda: shutil.copytree(answer_tree, tree, dirs_exist_ok=True))
    (tree / "boot.cat").unlink(missing_ok=True)  # 7z hands out the old boot catalog as a file; genisoimage makes one
    times["rebuild"], _ = timed(lambda: run([
        "genisoimage", "-quiet", "-udf", "-iso-level", "3", "-J", "-joliet-long", "-allow-limited-size",
        "-V", "WINARM_REMASTER", "-e", "efi/microsoft/boot/efisys.bin", "-no-emul-boot",
        "-o", str(out), str(tree)]))
    times["total"] = sum(times.values())
    return times


def wim_editions(wim: Path) -> list[str]:
    """The edition names wimlib reports in the WIM's XML (``wiminfo --xml``: UTF-16 with a byte-order mark)."""
    raw = run(["wiminfo", str(wim), "--xml"]).stdout
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode(errors="replace")
    return re.findall(r"<IMAGE INDEX=\"\d+\">.*?<NAME>(.*?)</NAME>", text, flags=re.S)


def fat_overlay(iso: Path, answer_tree: Path, scratch: Path) -> tuple[dict[str, float], list[str]]:
    """Extract sources/install.wim, read its editions with wimlib, then put the answer files on a new FAT image.
    Seconds by step and the editions found."""
    times: dict[str, float] = {}
    times["extract"], _ = timed(lambda: run(["7z", "e", "-y", "-bd", f"-o{scratch}", str(iso), "sources/install.wim"]))
    times["wiminfo"], editions = timed(lambda: wim_editions(scratch / "install.wim"))
    image = scratch / "answer.img"

    def make_fat() -> None:
        payload = sum(f.stat().st_size for f in answer_tree.rglob("*") if f.is_file())
        kib = max(8 * 1024, (payload * 2 + 4 * MiB) // 1024)
        run(["mkfs.fat", "-C", "-n", "WINARM", str(image), str(kib)])
        env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        run(["mcopy", "-s", "-Q", "-i", str(image), *[str(p) for p in sorted(answer_tree.iterdir())], "::/"],
            env=env)

    times["fat"], _ = timed(make_fat)
    times["total"] = sum(times.values())
    return times, editions


def tool_versions() -> str:
    def first(argv: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            return "missing"
        found = re.search(pattern, out.stdout + out.stderr)
        return found.group(1) if found else "?"

    probes = [
        ("7-Zip", ["7z"], r"7-Zip (?:\[\d+\] )?([0-9.]+)"),
        ("xorriso", ["xorriso", "-version"], r"xorriso ([0-9.]+)"),
        ("genisoimage", ["genisoimage", "--version"], r"genisoimage ([0-9.]+)"),
        ("wimlib", ["wiminfo", "--version"], r"wimlib ([0-9.]+)"),
        ("mtools", ["mcopy", "--version"], r"mtools\) ([0-9.]+)"),
    ]
    return ", ".join(f"{name} {first(argv, pattern)}" for name, argv, pattern in probes)


def probe_notes(work: Path, iso: Path) -> list[str]:
    """Why the other ways extract with 7z and read editions with ``wiminfo --xml``: what xorriso and plain
    wiminfo make of the test ISO."""
    probe = work / "xorriso-probe"
    run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(probe)])
    seen = sorted(str(p.relative_to(probe)) for p in probe.rglob("*") if p.is_file())
    notes = [f"xorriso -osirrox extracts {len(seen)} file(s) ({', '.join(seen)}) from a UDF bridge: it "
             "reads ISO 9660/Joliet/Rock Ridge, not UDF, so the remaster extracts with 7z x"]
    shutil.rmtree(probe, ignore_errors=True)
    wim_probe = work / "wim-probe"
    wim_probe.mkdir()
    run(["7z", "e", "-y", "-bd", f"-o{wim_probe}", str(iso), "sources/install.wim"])
    plain = subprocess.run(["wiminfo", str(wim_probe / "install.wim")], capture_output=True, text=True, check=False)
    count = re.search(r"Image Count:\s*(\d+)", plain.stdout)
    warning = " ".join(plain.stderr.split()) or "no warning"
    notes.append(f"plain wiminfo on the test WIM: exit {plain.returncode}, Image Count "
                 f"{count.group(1) if count else '?'} ({warning}): the test WIM has a real header and XML "
                 "but no image metadata, so the editions are read from wiminfo --xml (same extraction)")
    shutil.rmtree(wim_probe, ignore_errors=True)
    return notes


def check_remastered(out: Path, size: float) -> str:
    """The rebuilt ISO must still be what it claims: its editions and the answer file; a note saying so."""
    from winarm.media.iso import inspect_iso

    info = inspect_iso(out)
    listing = run(["7z", "l", str(out), "Autounattend.xml"]).stdout.decode(errors="replace")
    return (f"remastered {gib(size)} ISO: {out.stat().st_size / GiB:.2f} GiB, inspect_iso finds "
            f"{len(info.editions)} editions, Autounattend.xml "
            f"{'present' if 'Autounattend.xml' in listing else 'MISSING'}")

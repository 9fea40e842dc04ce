"""The test guest's own files: the cache key covers every one the guest is made of, and the awk programs init.sh
runs are the ones shipped beside it and say what init.sh expects of them.

The awk programs run here with the host's awk (mawk on Debian); the guest runs them with busybox awk, which
the boot tests in tests/system/test_testbed_windows.py exercise.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from winarm_testbed.disk_image import findings
from winarm_testbed.guest import cache_key, guest_inputs
from winarm_testbed.packages import Package
from winarm_testbed.windows_iso import ISO_MODULES

PACKAGE = Path(__file__).resolve().parents[3] / "winarm_testbed"
PACKAGES = [Package("busybox-static", "1:1.35.0-4", ""), Package("linux-image-6.1.0-1-arm64", "6.1.1-1", "")]


def imported_modules(module: str, seen: set[str] | None = None) -> set[str]:
    """The winarm_testbed modules MODULE imports, directly or not, itself included."""
    seen = set() if seen is None else seen
    seen.add(module)
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("winarm_testbed."):
            name = node.module.split(".", 1)[1]
            if name not in seen:
                imported_modules(name, seen)
    return seen


def test_the_cache_key_covers_every_module_and_guest_file() -> None:
    inputs = {p.name for p in guest_inputs()}
    modules = {f"{m}.py" for m in imported_modules("guest")}
    assert modules <= inputs, f"modules the guest build uses but its cache key ignores: {sorted(modules - inputs)}"
    shipped = {p.name for p in PACKAGE.glob("*.awk")} | {"init.sh", "grub.cfg"}
    assert shipped <= inputs, sorted(shipped - inputs)
    assert len(shipped) > 3, "init.sh's awk programs are files of their own"


def test_the_windows_iso_key_covers_every_module_the_guests_key_does_not() -> None:
    guest = {p.name for p in guest_inputs()}
    modules = {f"{m}.py" for m in imported_modules("windows_iso")} - guest
    assert modules <= set(ISO_MODULES), sorted(modules - set(ISO_MODULES))
    assert {"wim_writer.py", "wim_image.py"} <= modules


def test_the_cache_key_changes_with_any_input_and_package(tmp_path: Path) -> None:
    copies = []
    for path in guest_inputs():
        copy = tmp_path / path.name
        shutil.copyfile(path, copy)
        copies.append(copy)
    key = cache_key(PACKAGES, copies)
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert cache_key(PACKAGES, copies) == key, "the key is a function of the inputs"
    for copy in copies:
        original = copy.read_bytes()
        copy.write_bytes(original.replace(b"\n", b"\n ", 1))
        assert cache_key(PACKAGES, copies) != key, f"a change to {copy.name} leaves the key as it was"
        copy.write_bytes(original)
    newer = [PACKAGES[0], Package(PACKAGES[1].name, "6.1.1-2", "")]
    assert cache_key(newer, copies) != key


def test_init_sh_runs_exactly_the_awk_programs_shipped_beside_it() -> None:
    init = (PACKAGE / "init.sh").read_text()
    used = set(re.findall(r"-f /([\w.-]+\.awk)\b", init))
    assert used == {p.name for p in PACKAGE.glob("*.awk")}
    commands = re.findall(r"(?m)^[^#\n]*?\bawk\s+(\S+)", init)
    assert len(commands) == 5 and set(commands) == {"-f"}, f"an awk program left inside init.sh: {commands}"


def awk(*programs: str, data: str, tmp_path: Path) -> str:
    """Run the package's awk PROGRAMS (in order) on DATA with the host's awk; return what they print."""
    assert shutil.which("awk"), "awk (mawk) is part of every Debian system"
    source = tmp_path / "input.txt"
    source.write_text(data)
    argv = ["awk", *(arg for name in programs for arg in ("-f", str(PACKAGE / name))), str(source)]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


ANSWER = r"""<unattend xmlns="urn:schemas-microsoft-com:unattend">
<!-- <settings pass="oobeSystem"> a decoy -->
<settings pass="windowsPE"><component name="Microsoft-Windows-Setup"><DiskConfiguration/><ImageInstall/>
</component></settings>
<settings pass="specialize"><component name="x"><ComputerName> WINARM-1 </ComputerName><RunSynchronous>
<RunSynchronousCommand><Order>3</Order><Path>cmd /c E:\install-drivers.cmd specialize</Path></RunSynchronousCommand>
<RunSynchronousCommand><Order>1</Order><Path>cmd.exe /c for %d in (D E) do @if exist %d:\winarm.marker (mkdir
 "%WINDIR%\S" 2&gt;nul &amp; copy /y %d:\winarm\report.vbs "%WINDIR%\S\r.vbs" &gt;nul)</Path></RunSynchronousCommand>
</RunSynchronous></component></settings>
<settings pass="oobeSystem"><component name="y"><FirstLogonCommands>
<SynchronousCommand><Order>3</Order><CommandLine>cmd.exe /c echo WINARM-PHASE desktop-ready &gt; COM1</CommandLine>
</SynchronousCommand>
<SynchronousCommand><Order>1</Order><CommandLine>net use S: \\host.lan\Data pw /user:bob /persistent:yes</CommandLine>
</SynchronousCommand>
<SynchronousCommand><Order>2</Order><CommandLine>reg add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v Go
 /d "cmd /c echo &#65;B&gt;COM1" /f</CommandLine></SynchronousCommand>
<SynchronousCommand><Order>0</Order><CommandLine>cmd.exe /c start "" wscript.exe //B //NoLogo "C:\r.vbs" first-logon
</CommandLine></SynchronousCommand>
<SynchronousCommand><Order>4</Order><CommandLine>reg.exe add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v R
 /t REG_EXPAND_SZ /d "wscript.exe //B \"%WINDIR%\r.vbs\" desktop-ready" /f</CommandLine></SynchronousCommand>
<SynchronousCommand><Order>5</Order><CommandLine>wscript //B x.vbs hook C:\body.txt 3</CommandLine></SynchronousCommand>
<SynchronousCommand><Order>6</Order><CommandLine>cmd /c D:\install-drivers.cmd oobeSystem</CommandLine>
</SynchronousCommand>
</FirstLogonCommands></component></settings>
</unattend>
"""


def test_answer_facts_read_the_answer_file_as_init_sh_expects(tmp_path: Path) -> None:
    facts = awk("cmdline.awk", "answer-facts.awk", data=ANSWER, tmp_path=tmp_path).splitlines()
    assert facts == [
        "unattend 1", "setup 1", "diskconfig 1", "imageinstall 1", "computername WINARM-1", "specialize 1",
        "firstlogon 1",
        "sp 1 copy |winarm/report.vbs|%WINDIR%\\S\\r.vbs|",
        "sp 3 drivers specialize",
        "fl 0 report 0 |C:\\r.vbs|first-logon|||",
        "fl 1 share S: host.lan Data 1 bob pw",
        "fl 2 runkey Go reg_sz |cmd /c echo AB>COM1|",
        "fl 3 echo com1 |WINARM-PHASE desktop-ready |",
        "fl 4 runkey R reg_expand_sz |wscript.exe //B \"%WINDIR%\\r.vbs\" desktop-ready|",
        "fl 5 report 1 |x.vbs|hook|C:\\body.txt|3|",
        "fl 6 drivers oobeSystem",
    ]


def test_run_key_facts_keep_only_the_commands_the_testbed_runs(tmp_path: Path) -> None:
    keys = ("Go reg_sz cmd /c echo hello>COM1\nFile reg_sz cmd /d /c \"echo a b >\\\\host.lan\\Data\\x.txt\"\n"
            "Other reg_sz notepad.exe\n"
            "Ready reg_expand_sz wscript.exe //B //NoLogo \"%WINDIR%\\r.vbs\" desktop-ready\n")
    facts = awk("cmdline.awk", "run-key-facts.awk", data=keys, tmp_path=tmp_path).splitlines()
    assert facts == ["rk Go reg_sz echo com1 |hello|", "rk File reg_sz echo unc host.lan Data |x.txt|a b |",
                     "rk Ready reg_expand_sz report 1 |%WINDIR%\\r.vbs|desktop-ready|||"]


def test_batch_facts_find_the_driver_scripts_report(tmp_path: Path) -> None:
    from winarm.answer.render import render_driver_script

    script = render_driver_script(["20-NetKVM", "50-viorng"])
    facts = awk("cmdline.awk", "batch-facts.awk", data=script, tmp_path=tmp_path).splitlines()
    assert facts == ["report 1 |%WINDIR%\\Setup\\Scripts\\winarm-report.vbs|drivers|%REPORT%|10|"]
    assert awk("cmdline.awk", "batch-facts.awk", data="@echo off\r\n", tmp_path=tmp_path) == ""


def test_answer_facts_read_winarms_own_answer_file(tmp_path: Path) -> None:
    """The answer file winarm renders, read as the test guest reads it: what it copies, runs and reports."""
    from winarm.answer.render import render
    from winarm.answer.settings import AnswerSettings

    facts = awk("cmdline.awk", "answer-facts.awk", data=render(AnswerSettings(drivers_pass="firstlogon")),
                tmp_path=tmp_path).splitlines()
    script = "%WINDIR%\\Setup\\Scripts\\winarm-report.vbs"
    extend = "%WINDIR%\\Setup\\Scripts\\winarm-extend-c.cmd"
    assert [f for f in facts if f.startswith(("sp ", "fl "))] == [
        f"sp 1 copy |winarm/report.vbs|{script}|",
        f"sp 5 copy |winarm/extend-c.cmd|{extend}|",
        f"sp 6 copy |winarm/extend-c.txt|{extend[:-3]}txt|",
        f"fl 1 report 0 |{script}|first-logon|||",
        "fl 2 drivers oobeSystem",
        f"fl 3 task WinarmExtendC |{extend}|",
        f"fl 4 batch 1 |{extend}|",
        f'fl 5 runkey WinarmDesktopReady reg_expand_sz |wscript.exe //B //NoLogo "{script}" desktop-ready|',
        f"fl 6 report 0 |{script}|desktop-ready|||",
    ]


def test_the_testbed_finds_the_product_key_command_and_its_scripts_report(tmp_path: Path) -> None:
    """The first-logon product-key command is a "productkey" fact (the testbed plays the script), and the
    script's `start "" wscript ...` lines, started from a batch file, are reports not waited for."""
    from winarm.answer.render import render, render_product_key_script
    from winarm.answer.settings import AnswerSettings

    text = render(AnswerSettings(product_key="VK7JG-NPHTM-C97JM-9MPGT-3V66T", has_drivers=False))
    facts = awk("cmdline.awk", "answer-facts.awk", data=text, tmp_path=tmp_path).splitlines()
    assert [f for f in facts if f.startswith("fl ")][1] == "fl 2 productkey"
    reports = awk("cmdline.awk", "batch-facts.awk", data=render_product_key_script(), tmp_path=tmp_path)
    assert reports.splitlines() == ["report 0 |%WINDIR%\\Setup\\Scripts\\winarm-report.vbs|product-key|%REPORT%||"] * 2


@pytest.mark.parametrize("output", [
    "fsck.fat 4.2 (2021-01-31)\nDirty bit is set. Fs was not properly unmounted.\n  Automatically removing dirty "
    "bit.\n/x\n  Reclaimed 2 unused clusters (8192 bytes) in 1 chain.  \n\nLeaving filesystem unchanged.\n"
    "/dev/vda2: 3 files, 10/100 clusters\n",
    "fsck.fat 4.2 (2021-01-31)\n/dev/vda1: 1 files, 1/10 clusters\n",
])
def test_fsck_findings_match_the_hosts_reading(output: str, tmp_path: Path) -> None:
    line = awk("fsck-findings.awk", data=output, tmp_path=tmp_path).rstrip("\n")
    assert line == "; ".join(findings(output))[:300]
    assert ("dirty bit set (not properly unmounted)" in line) == ("Dirty bit" in output)

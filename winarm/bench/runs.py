"""``winarm bench``: boot a VM several times per variant and compare the phases, as numbers and as a chart.

A variant is a named set of ``winarm up`` settings (``drivers=specialize``, ``cpus=4,disk_bus=nvme``). Each
run is a real ``winarm up`` in its own process, stopped gracefully once the guest reaches the target marker
(``desktop-ready`` by default); its phases come from the phase log. Runs alternate between variants (the
first variant of each round rotates), so drift on the machine hits every variant alike.

Two modes:
- cold boot (default): each variant is installed once (recorded, not counted), then every run boots a
  copy-on-write overlay of that installed disk, with copies of its UEFI variables, TPM state and facts;
- from scratch (``--from-scratch``): every run is the whole install on a fresh disk.

Failed runs and runs stopped by ``--run-timeout`` are reported with their reason and partial timeline, and
are left out of the statistics, which say how many runs they stand on. The variants' syntax lives in
:mod:`winarm.bench.variants`, the statistics and the table in :mod:`winarm.bench.stats`; the names the CLI uses
(``Variant``, ``parse_settings``, ``parse_variant``, ``format_table``) are importable from here too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from winarm.bench.stats import STATUS_FAILED, STATUS_OK, STATUS_TIMEOUT, by_phase, format_table, phase_order, summarize
from winarm.bench.variants import Variant, parse_settings, parse_variant, up_options
from winarm.files import write_atomic
from winarm.timeline.events import read_events
from winarm.timeline.phases import derive_phases, total_duration

__all__ = ["DEFAULT_UNTIL", "BenchPlan", "Variant", "clone_installed", "format_table", "parse_settings",
           "parse_variant", "run_bench", "run_up", "write_json"]

DEFAULT_UNTIL = "desktop-ready"


@dataclass
class BenchPlan:
    """What one ``winarm bench`` does."""

    variants: list[Variant]
    common: dict[str, str]
    iso: Path | None
    runs: int
    from_scratch: bool
    run_timeout: float
    until: str
    workdir: Path
    keep: bool = False
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def _tail(path: Path, lines: int = 4) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM (winarm stops the VM gracefully), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_up(plan: BenchPlan, name: str, storage: Path, settings: Mapping[str, str], log_path: Path) -> dict[str, Any]:
    """One ``winarm up`` to the target marker; returns the run record (status, error, phases, by_phase, total)."""
    argv = [plan.python, "-m", "winarm", "up", "--name", name, "--storage", str(storage), "--stop-at", plan.until]
    if plan.iso is not None:
        argv += ["--iso", str(plan.iso)]
    argv += up_options({**plan.common, **settings})
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=plan.env)
        try:
            code: int | None = proc.wait(plan.run_timeout)
            status, error = (STATUS_OK, None) if code == 0 else (STATUS_FAILED, f"winarm up exited with {code}")
        except subprocess.TimeoutExpired:
            _stop(proc, 150)
            code = proc.returncode
            status, error = STATUS_TIMEOUT, f"no {plan.until} within {plan.run_timeout:g} s; stopped"
    events_path = storage / name / "events.jsonl"
    events = read_events(events_path) if events_path.exists() else []
    phases = derive_phases(events)
    markers = {e.get("name") for e in events if e.get("kind") == "marker"}
    if status == STATUS_OK and not markers & set(plan.until.split(",")):
        status, error = STATUS_FAILED, f"the VM stopped before {plan.until}"
    if status != STATUS_OK and error is not None:
        detail = _tail(log_path)
        error = f"{error}: {detail}" if detail else error
    phase_dicts = [p.as_dict() for p in phases]
    return {
        "status": status,
        "error": error,
        "exit_code": code,
        "wall": round(time.monotonic() - started, 3),
        "total": total_duration(phases) if status == STATUS_OK else None,
        "phases": phase_dicts,
        "by_phase": by_phase(phase_dicts),
        "log": str(log_path),
        "events": str(events_path),
    }


def clone_installed(base: Path, target: Path) -> None:
    """A VM directory that boots ``base``'s installed disk through a copy-on-write overlay, with copies of its
    UEFI variables, TPM state and facts. ``base`` is never written. Raises OSError or CalledProcessError."""
    target.mkdir(mode=0o700, parents=True)
    disks = sorted(base.glob("disk.*"))
    if not disks:
        raise FileNotFoundError(f"no disk image in {base}")
    disk = disks[0]
    if disk.suffix == ".raw":  # no copy-on-write for raw images: a sparse copy
        subprocess.run(["cp", "--sparse=always", str(disk), str(target / disk.name)], check=True, capture_output=True)
    else:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(disk), "-F", "qcow2", str(target / "disk.qcow2")],
            check=True, capture_output=True,
        )
    for name in ("efivars.fd", "vm.json"):
        if (base / name).exists():
            shutil.copy2(base / name, target / name)
    if (base / "tpm").is_dir():
        shutil.copytree(base / "tpm", target / "tpm")


def _not_run(error: str, log_path: Path) -> dict[str, Any]:
    """The record of a run that could not start, with its reason."""
    return {"status": STATUS_FAILED, "error": error, "total": None, "phases": [], "by_phase": {},
            "log": str(log_path), "events": None, "exit_code": None, "wall": 0.0}


def _counted_run(plan: BenchPlan, storage: Path, variant: Variant, *, install: Mapping[str, Any] | None,
                 base: Path, name: str, log_path: Path) -> dict[str, Any]:
    """One counted run: a cold boot of a copy of the variant's installed VM (``install`` given) or a whole
    install; its disk image is removed afterwards unless ``--keep``."""
    if install is not None:
        if install["status"] != STATUS_OK:
            return _not_run("the variant's install failed", log_path)
        try:
            clone_installed(base, storage / name)
        except (OSError, subprocess.CalledProcessError) as error:
            return _not_run(f"cannot copy the installed VM: {error}", log_path)
    record = run_up(plan, name, storage, variant.settings, log_path)
    if not plan.keep:
        for image in (storage / name).glob("disk.*"):
            image.unlink()
    return record


def run_bench(plan: BenchPlan, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole benchmark and return the result document (see :func:`summarize` for the statistics)."""
    plan.workdir.mkdir(parents=True, exist_ok=True)
    storage = plan.workdir / "vms"
    logs = plan.workdir / "logs"
    storage.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    variants: list[dict[str, Any]] = [
        {"name": v.name, "settings": dict(v.settings), "install": None, "runs": []} for v in plan.variants
    ]
    total_runs = plan.runs * len(plan.variants)
    started = datetime.now(UTC)

    if not plan.from_scratch:
        for index, variant in enumerate(plan.variants):
            name = f"b{index}base"
            say(f"installing {variant.name} (once, not counted)")
            record = run_up(plan, name, storage, variant.settings, logs / f"{name}.log")
            variants[index]["install"] = record
            say(f"  {variant.name} install: {record['status']}"
                + (f" in {record['total']:.1f} s" if record["total"] else f": {record['error']}"))

    sequence = 0
    for round_index in range(plan.runs):
        shift = round_index % len(plan.variants)
        for index in [*range(shift, len(plan.variants)), *range(shift)]:
            sequence += 1
            variant = plan.variants[index]
            name = f"b{index}r{round_index + 1}"
            log_path = logs / f"{name}.log"
            record = _counted_run(plan, storage, variant, install=variants[index]["install"],
                                  base=storage / f"b{index}base", name=name, log_path=log_path)
            variants[index]["runs"].append({"index": round_index + 1, "sequence": sequence, **record})
            ok = record["status"] == STATUS_OK
            outcome = f"{record['total']:.2f} s" if ok else f"{record['status']}: {record['error']}"
            say(f"[{sequence}/{total_runs}] {variant.name} run {round_index + 1}: {outcome}")

    if not plan.keep:
        for index in range(len(plan.variants)):
            shutil.rmtree(storage / f"b{index}base", ignore_errors=True)

    order = phase_order(
        [[p["name"] for p in run["phases"]] for record in variants for run in record["runs"]]
    )
    for record, summary in zip(variants, summarize([v["runs"] for v in variants], order), strict=True):
        record["summary"] = summary
    return {
        "mode": "from-scratch" if plan.from_scratch else "cold-boot",
        "until": plan.until,
        "runs_per_variant": plan.runs,
        "iso": str(plan.iso) if plan.iso else None,
        "common": plan.common,
        "started": started.isoformat(timespec="seconds"),
        "machine": _machine(),
        "phase_order": order,
        "variants": variants,
    }


def _machine() -> dict[str, Any]:
    import platform

    import psutil

    return {"arch": platform.machine(), "cpus": psutil.cpu_count(), "ram": psutil.virtual_memory().total,
            "kernel": platform.release(), "python": platform.python_version()}


def write_json(result: Mapping[str, Any], path: Path) -> None:
    """Write the result document atomically (mode 0644). Raises :class:`UserError` for an unusable path."""
    write_atomic(path, (json.dumps(result, indent=2) + "\n").encode(), mode=0o644, what="--json")

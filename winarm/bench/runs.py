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
are left out of the statistics, which say how many runs they stand on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from winarm.errors import UserError
from winarm.files import write_atomic
from winarm.timeline.events import read_events
from winarm.timeline.phases import derive_phases, total_duration

KEY_ALIASES: dict[str, str] = {
    "drivers": "drivers_pass",
    "drivers_pass": "drivers_pass",
    "cpus": "cpus",
    "cpu_cores": "cpus",
    "ram": "ram",
    "ram_size": "ram",
    "accel": "accel",
    "disk_bus": "disk_bus",
    "bus": "disk_bus",
    "disk_format": "disk_format",
    "disk_size": "disk_size",
    "cpu_model": "cpu_model",
    "cpu": "cpu_model",
    "tpm": "tpm",
    "secure_boot": "secure_boot",
    "edition": "edition",
    "language": "language",
    "keyboard": "keyboard",
    "computer_name": "computer_name",
    "username": "username",
    "password": "password",
    "drivers_path": "drivers",
    "shared": "shared",
    "share": "share",
    "uid": "uid",
    "gid": "gid",
    "timeout": "timeout",
}
"""Setting names a variant may use (as written, lower case, '-' or '_'), and the ``winarm up`` option each sets."""
BOOL_KEYS = {"tpm", "secure_boot", "share"}
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
DEFAULT_UNTIL = "desktop-ready"
MIN_RATIO_BASE = 0.05
"""The table shows no ratio against a median shorter than this (seconds): it would be noise (the JSON has it)."""


@dataclass(frozen=True)
class Variant:
    """A name and the ``winarm up`` settings it changes (option name -> value)."""

    name: str
    settings: Mapping[str, str]


def parse_settings(text: str, what: str = "variant") -> dict[str, str]:
    """``key=value[,key=value...]`` into ``{option: value}``. Raises :class:`UserError` naming the bad part."""
    settings: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not sep or not key or not value.strip():
            raise UserError(
                f"{what} {text!r}: {part!r} is not key=value: write for example drivers=specialize,cpus=4"
            )
        option = KEY_ALIASES.get(key)
        if option is None:
            known = ", ".join(sorted(set(KEY_ALIASES)))
            raise UserError(f"{what} {text!r}: {key!r} is not a setting winarm bench can vary: use one of {known}")
        if option in settings:
            raise UserError(f"{what} {text!r}: {key!r} is given twice")
        settings[option] = value.strip()
    return settings


def parse_variant(text: str) -> Variant:
    """A ``--variant`` value, optionally named: ``NAME:key=value,...``; the name defaults to the text."""
    label, sep, rest = text.partition(":")
    if sep and "=" not in label:
        return Variant(label.strip(), parse_settings(rest))
    return Variant(text.strip(), parse_settings(text))


def up_options(settings: Mapping[str, str]) -> list[str]:
    """The ``winarm up`` command-line options for ``settings`` (booleans as ``--x``/``--no-x``)."""
    argv: list[str] = []
    for option, value in settings.items():
        flag = "--" + option.replace("_", "-")
        if option in BOOL_KEYS:
            on = value.strip().lower() in ("y", "yes", "1", "true", "on")
            argv.append(flag if on else "--no-" + option.replace("_", "-"))
        elif option == "drivers":
            argv += ["--drivers", value]
        else:
            argv += [flag, value]
    return argv


# --- the arithmetic ----------------------------------------------------------------------------------------------


def phase_order(timelines: Iterable[Sequence[str]]) -> list[str]:
    """Every phase name of the timelines, in boot order: each timeline's names in order of first appearance,
    merged so that a name new to the order goes right after the furthest name its timeline has passed (a
    repeated phase, like the firmware of a later boot, does not pull it back)."""
    order: list[str] = []
    for names in timelines:
        reached = -1  # the furthest position in ``order`` this timeline has been through
        for name in names:
            if name in order:
                reached = max(reached, order.index(name))
            else:
                reached += 1
                order.insert(reached, name)
    return order


def by_phase(phases: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Closed phases' durations summed per name (a name seen in several boots, like firmware, adds up)."""
    sums: dict[str, float] = {}
    for phase in phases:
        if phase.get("duration") is not None:
            sums[phase["name"]] = round(sums.get(phase["name"], 0.0) + float(phase["duration"]), 6)
    return sums


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None when either is missing or the reference is zero."""
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, 4)


def summarize(runs_per_variant: Sequence[Sequence[Mapping[str, Any]]], order: Sequence[str]) -> list[dict[str, Any]]:
    """Per variant, per phase of ``order`` and ``total``: median, min and max over the variant's successful runs,
    and the ratio of its median to the first variant's median. A phase a run did not have counts as absent, not
    zero; ``runs`` says how many runs each figure stands on."""
    summaries: list[dict[str, Any]] = []
    for runs in runs_per_variant:
        ok = [r for r in runs if r["status"] == STATUS_OK]
        summary: dict[str, Any] = {}
        for key in [*order, "total"]:
            values = [float(r["total"]) if key == "total" else float(r["by_phase"][key])
                      for r in ok if (key == "total" and r.get("total") is not None) or key in r["by_phase"]]
            if values:
                summary[key] = {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                                "max": round(max(values), 4), "runs": len(values)}
        summaries.append(summary)
    reference = summaries[0] if summaries else {}
    for summary in summaries:
        for key, figures in summary.items():
            base = reference.get(key)
            figures["ratio"] = ratio(figures["median"], base["median"] if base else None)
    return summaries


# --- running --------------------------------------------------------------------------------------------------------


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


def _counted_run(plan: BenchPlan, storage: Path, variant: Variant, install: Mapping[str, Any] | None, base: Path,  # noqa: PLR0917
                 name: str, log_path: Path) -> dict[str, Any]:
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
            record = _counted_run(plan, storage, variant, variants[index]["install"], storage / f"b{index}base",
                                  name, log_path)
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


# --- presenting ----------------------------------------------------------------------------------------------------


def format_table(result: Mapping[str, Any]) -> list[str]:
    """The result for people: per phase (boot order) and total, each variant's median, min-max and ratio to
    the first variant; then the runs that failed, with their reasons."""
    variants = result["variants"]
    keys = [*result["phase_order"], "total"]
    width = max([len("phase"), *(len(k) for k in keys)]) + 2
    column = 30
    head = f"{'phase':<{width}}" + "".join(f"{v['name'][:column - 2]:<{column}}" for v in variants)
    sub = f"{'':<{width}}" + "".join(f"{'median  min-max     ratio':<{column}}" for _ in variants)
    lines = [head, sub]
    for key in keys:
        row = f"{key:<{width}}"
        for variant in variants:
            figures = variant["summary"].get(key)
            if figures is None:
                row += f"{'-':<{column}}"
                continue
            spread = f"{figures['min']:.1f}-{figures['max']:.1f}"
            reference = variants[0]["summary"].get(key)
            meaningful = figures.get("ratio") is not None and reference and reference["median"] >= MIN_RATIO_BASE
            share = f"{figures['ratio']:.2f}x" if meaningful else "-"
            row += f"{figures['median']:>6.2f}  {spread:<11} {share:<{column - 20}}"
        lines.append(row.rstrip())
    counted = ", ".join(
        f"{v['name']}: {sum(r['status'] == STATUS_OK for r in v['runs'])}/{len(v['runs'])}" for v in variants
    )
    lines.append(f"seconds; medians over successful runs ({counted}); ratio = median / {variants[0]['name']}")
    for variant in variants:
        for run in variant["runs"]:
            if run["status"] != STATUS_OK:
                lines.append(f"{variant['name']} run {run['index']}: {run['status']}: {run['error']}")
    return lines


def write_json(result: Mapping[str, Any], path: Path) -> None:
    """Write the result document atomically (mode 0644). Raises :class:`UserError` for an unusable path."""
    write_atomic(path, (json.dumps(result, indent=2) + "\n").encode(), mode=0o644, what="--json")

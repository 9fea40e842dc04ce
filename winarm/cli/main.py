"""The ``winarm`` command: a thin shell over the configuration, the daemon and the phase log.

Exit status: 0 done, 1 a runtime failure, 2 a user's mistake (one line, no traceback), 3 from ``status`` when
the VM is not running.
"""

from __future__ import annotations

import time

T0 = time.monotonic()  # the phase clock counts from here: as close to "winarm up" as Python allows

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn, TypeVar  # noqa: E402

import click  # noqa: E402

from winarm.config.paths import VmPaths  # noqa: E402
from winarm.config.vm import ENV_NAMES, Config, check_name, default_run_base, default_storage, load_config  # noqa: E402
from winarm.errors import EXIT_USAGE, RuntimeFailure, UserError, WinarmError  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])
EXIT_NOT_RUNNING = 3


def fail(error: WinarmError) -> NoReturn:
    """Print one line and exit with the error's status."""
    click.echo(f"winarm: {error}", err=True)
    sys.exit(error.exit_code)


def vm_options(func: F) -> F:
    """``--name`` and ``--storage``, shared by every command that names a VM."""
    func = click.option(
        "--storage",
        type=click.Path(path_type=Path),
        default=None,
        help="Directory holding the VMs' disks and logs [env STORAGE; default /storage in the "
        "container, else ~/.local/share/winarm].",
    )(func)
    func = click.option(
        "--name",
        default=None,
        help="The VM's name: its folder under the storage directory [env NAME; default windows].",
    )(func)
    return func


_INSTALL_OPTIONS = [
    click.option("--iso", default=None,
                 help="Windows for ARM64 install ISO, attached unchanged as a USB CD [env BOOT]."),
    click.option("--iso-sha256", default=None, help="Expected SHA-256 of an ISO given as a URL."),
    click.option("--drivers", default=None, help="virtio-win ISO or extracted folder [env DRIVERS]."),
    click.option("--drivers-pass", default=None, type=click.Choice(["windowsPE", "specialize", "firstlogon"]),
                  help="Where the non-boot-critical drivers are installed [env DRIVERS_PASS; default specialize]."),
    click.option("--unattend/--no-unattend", default=None,
                  help="Add the answer medium (Autounattend.xml and drivers) for an unattended install [default on]; "
                  "off boots the ISO as it is."),
    click.option("--username", default=None, help="Windows user [env USERNAME; default Docker]."),
    click.option("--password", default=None, help="Windows password [env PASSWORD; default admin]. Visible to "
                 "'ps' as an argument: prefer --password-file or the environment."),
    click.option("--password-file", default=None, metavar="FILE",
                 help="Read the Windows password from FILE's first line [env PASSWORD_FILE]."),
    click.option("--computer-name", default=None, help="Windows computer name [env COMPUTER_NAME; default WINARM]."),
    click.option("--language", default=None, help="Windows language tag [env LANGUAGE; default en-US]."),
    click.option("--keyboard", default=None, help="Keyboard (input locale) [env KEYBOARD; default: the language]."),
    click.option("--edition", default=None, help="Edition by index or name [env EDITION; default: the first Pro]."),
    click.option("--product-key", default=None, help="Product key [env KEY; default none]."),
]


_SHARE_OPTIONS = [
    click.option("--shared", multiple=True, metavar="[NAME=]DIR",
                 help="Share DIR with the guest as \\\\host.lan\\NAME (default name Data); repeat for more "
                 "[env SHARED; default /shared when it exists]."),
    click.option("--share/--no-share", default=None, help="Run the shared folder's smbd [env SAMBA; default on when "
                 "a folder is shared]."),
    click.option("--share-readonly", is_flag=True, default=None,
                 help="The guest may read, not write [env SAMBA_READONLY]."),
    click.option("--uid", default=None, help="Owner of the files the guest creates [env UID or PUID; default the "
                 "shared folder's owner, or winarm's own user when not root]."),
    click.option("--gid", default=None, help="Group of those files [env GID or PGID; default the folder's group]."),
    click.option("--file-mode", default=None, help="Mode of new files [env SHARE_FILE_MODE; default 0664]."),
    click.option("--dir-mode", default=None, help="Mode of new folders [env SHARE_DIR_MODE; default 0775]."),
    click.option("--share-user", default=None, help="Require this user name for the share instead of guest "
                 "access [env SHARE_USER]."),
    click.option("--share-password", default=None, help="Its password [env SHARE_PASSWORD]."),
    click.option("--share-port", default=None, help="Host loopback port for smbd [env SHARE_PORT; default a free "
                 "one]; the guest always uses 445."),
]


def share_options(func: F) -> F:
    """The shared-folder options of ``up`` and ``prepare`` (the answer file maps the shares in the guest)."""
    for option in reversed(_SHARE_OPTIONS):
        func = option(func)
    return func


def install_options(func: F) -> F:
    """The install options shared by ``up`` and ``prepare``: the ISO, drivers and answer-file settings."""
    for option in reversed(_INSTALL_OPTIONS):
        func = option(func)
    return func


def _paths(name: str | None, storage: Path | None, disk_format: str = "qcow2") -> tuple[str, VmPaths]:
    vm = check_name(name or os.environ.get("NAME") or "windows")
    base = (storage or Path(os.environ.get("STORAGE") or default_storage())).expanduser().absolute()
    return vm, VmPaths(base / vm, default_run_base() / vm, disk_format)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="winarm")
def main() -> None:
    """Run Windows 11/10 for ARM64 in QEMU, with a boot-phase clock."""


@main.command()
@vm_options
@click.option("--ram", default=None, help="Guest memory: 8G, 8192M, half or max [env RAM_SIZE; default 4G].")
@click.option("--cpus", default=None, help="Virtual CPUs: a count, half or max [env CPU_CORES; default 2].")
@click.option("--disk-size", default=None, help="System disk size (grown, never shrunk) [env DISK_SIZE; default 64G].")
@click.option("--disk-format", default=None, help="qcow2 or raw [env DISK_FMT; default qcow2].")
@click.option("--disk-bus", default=None, help="virtio-blk, virtio-scsi or nvme [env DISK_TYPE; default virtio-blk].")
@click.option("--allocate/--no-allocate", default=None,
              help="Reserve the whole disk on the host now (preallocated) instead of a sparse image that grows as "
              "the guest writes [env ALLOCATE; default off].")
@install_options
@share_options
@click.option("--accel", default=None, help="auto, kvm or tcg [env ACCEL; default auto: KVM on an aarch64 host].")
@click.option("--tpm/--no-tpm", default=None, help="Attach a software TPM 2.0 (swtpm) [env TPM; default on].")
@click.option(
    "--secure-boot/--no-secure-boot",
    default=None,
    help="UEFI Secure Boot with Microsoft keys [default on; off for unsigned test guests].",
)
@click.option(
    "--timeout",
    default=None,
    help="Seconds the guest gets to shut down before QEMU is told to quit [env TIMEOUT; default 105].",
)
@click.option("--vnc", default=None, help="Address VNC listens on [env VNC; default 127.0.0.1].")
@click.option("--vnc-password-file", default=None, metavar="FILE",
              help="Require the VNC password in FILE's first line (1-8 characters, the VNC protocol's limit) [env "
              "VNC_PASSWORD_FILE, or the password itself in VNC_PASSWORD]; given to QEMU through QMP, never on its "
              "command line.")
@click.option("--metrics-port", default=None, help="Serve Prometheus metrics on this port [env METRICS_PORT; "
              "default off].")
@click.option("--metrics-address", default=None, help="Address of the metrics endpoint [env METRICS_ADDRESS; "
              "default 127.0.0.1].")
@click.option(
    "--stop-at",
    default=None,
    metavar="MARKER",
    help="Stop the VM gracefully once the guest prints 'WINARM-PHASE MARKER' (demos, benchmarks).",
)
@click.option("--cpu-model", default=None, metavar="MODEL",
              help="QEMU CPU model [default: host under KVM, max,pauth-impdef=on under TCG].")
@click.option("--console", "echo_console", is_flag=True, help="Copy the guest's serial console to stderr.")
@click.option("--dry-run", is_flag=True, help="Print the QEMU command line, one argument per line, and exit.")
def up(echo_console: bool, dry_run: bool, **flags: Any) -> None:
    """Boot the VM and supervise it until it stops (SIGTERM/SIGINT or 'winarm down' stop it gracefully)."""
    from winarm.config import host

    try:
        cfg = load_config(flags, os.environ, host.probe())
        for note in cfg.notes:
            click.echo(f"winarm: note: {note}", err=True)
        if dry_run:
            _dry_run(cfg)
            return
        cfg = fetch_iso(cfg)
        from winarm.vm.launch import launch

        launched = launch(cfg, T0)  # QEMU starts here, before the event loop and QMP are even imported
        import asyncio

        from winarm.vm.supervisor import supervise

        code = asyncio.run(supervise(launched, out=sys.stdout, echo_console=echo_console))
    except WinarmError as error:
        fail(error)
    except OSError as error:  # the storage failed under us (full, read-only, gone): still one line
        where = f" {error.filename}" if error.filename else ""
        fail(RuntimeFailure(f"cannot go on:{where}: {error.strerror or error}"))
    sys.exit(code)


def fetch_iso(cfg: Config) -> Config:
    """The configuration with a URL ``--iso`` downloaded into ``STORAGE/downloads`` (resumed, checked)."""
    if cfg.iso_url is None:
        return cfg
    from dataclasses import replace

    from winarm.media.download import fetch, text_progress

    path = fetch(cfg.iso_url, cfg.storage / "downloads", sha256=cfg.iso_sha256, progress=text_progress())
    return replace(cfg, iso=path)


def _dry_run(cfg: Config) -> None:
    from winarm.qemu.argv import Endpoints, build_argv
    from winarm.qemu.firmware import find_firmware
    from winarm.services.smbd import free_port

    if cfg.iso_url is not None:  # show where the download would go; fetch nothing
        from dataclasses import replace

        from winarm.media.download import file_name

        cfg = replace(cfg, iso=cfg.storage / "downloads" / file_name(cfg.iso_url))
    paths = VmPaths(cfg.state_dir, cfg.run_dir, cfg.disk_format)
    argv = build_argv(
        cfg,
        find_firmware(cfg.secure_boot),
        paths,
        Endpoints(qmp=paths.qmp_socket, serial=paths.serial_socket),
        media=[cfg.iso] if cfg.iso else [],
        tpm_socket=paths.tpm_socket if cfg.tpm else None,
        share_port=(cfg.share.port or free_port()) if cfg.share else None,
    )
    for arg in argv:
        click.echo(arg)


@main.command()
@vm_options
@install_options
@share_options
@click.option("--disk-bus", default=None, help="virtio-blk, virtio-scsi or nvme [env DISK_TYPE; default virtio-blk].")
@click.option("--tpm/--no-tpm", default=None, help="A TPM will be attached (skips the TPM bypass) [default on].")
@click.option("--secure-boot/--no-secure-boot", default=None, help="Secure Boot will be on [default on].")
def prepare(**flags: Any) -> None:
    """Build (or reuse) the answer medium for an install: Autounattend.xml and the drivers, beside the ISO.

    Prints the medium's path last. The user's ISO is only read, never changed.
    """
    from winarm.answer.medium import build_answer_medium
    from winarm.answer.plan import plan_install
    from winarm.config import host

    try:
        # the disk is not made here: a nominal size keeps the free-space check out of the way
        cfg = fetch_iso(load_config({**flags, "unattend": True, "disk_size": "64M"}, os.environ, host.probe()))
        if cfg.iso is None:
            raise UserError("prepare needs --iso (env BOOT): the Windows for ARM64 ISO to install from")
        plan = plan_install(cfg, {})
        if plan is None:  # pragma: no cover - plan_install returns None only without an ISO
            raise UserError("nothing to prepare")
        cfg.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        medium, built = build_answer_medium(cfg.state_dir, plan.settings, plan.selection)
    except WinarmError as error:
        fail(error)
    click.echo(f"edition: {plan.edition.index} {plan.edition.name} (build {plan.edition.build}), "
               f"Windows {plan.settings.windows}", err=True)
    click.echo(f"windowsPE drivers: {', '.join(p.driver.name for p in plan.selection.boot_critical) or 'none'}; "
               f"{cfg.drivers_pass} drivers: {', '.join(p.driver.name for p in plan.selection.others) or 'none'}",
               err=True)
    if plan.selection.missing:
        click.echo(f"not found in the driver tree: {', '.join(plan.selection.missing)}", err=True)
    click.echo("built" if built else "cached (nothing to build)", err=True)
    click.echo(str(medium))


@main.command()
@vm_options
@click.option("--wait/--no-wait", default=True, help="Wait until the daemon has stopped the VM [default: wait].")
def down(name: str | None, storage: Path | None, wait: bool) -> None:
    """Stop a running VM gracefully (power button, then quit after the timeout)."""
    from winarm.vm.control import ask

    try:
        vm, paths = _paths(name, storage)
    except WinarmError as error:
        fail(error)
    reply = ask(paths.control_socket, "down")
    if reply is None:
        click.echo(f"VM {vm!r} is not running")
        return
    pid = reply.get("daemon_pid")
    click.echo(f"stopping VM {vm!r}")
    if not wait or not isinstance(pid, int):
        click.echo("stop requested")
        return
    limit = float(reply.get("timeout", 105)) + 15
    if not wait_for_exit(pid, limit):
        click.echo(f"winarm: VM {vm!r} did not stop within {limit:.0f} s (daemon pid {pid})", err=True)
        sys.exit(1)
    click.echo(f"VM {vm!r} stopped")


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` has ended (a zombie counts as ended); False on timeout.

    Uses a pidfd, which becomes readable the moment the process terminates: no polling.
    """
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


@main.command()
@vm_options
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object (a list when no --name is given and several run)."
)
def status(name: str | None, storage: Path | None, as_json: bool) -> None:
    """Show a VM's state (exit 0 running and healthy, 3 otherwise). Without --name: every running VM."""
    from winarm.vm.control import running_names, status_of
    from winarm.vm.status import status_lines

    try:
        if name is None and not os.environ.get("NAME"):
            names = running_names(default_run_base()) or ["windows"]
        else:
            names = [check_name(name or os.environ["NAME"])]
        reports = [status_of(_paths(vm, storage)[1], vm) for vm in names]
    except WinarmError as error:
        fail(error)
    for line in status_lines(reports, as_json=as_json):
        click.echo(line)
    sys.exit(0 if all(r.healthy for r in reports) else EXIT_NOT_RUNNING)


@main.command()
@vm_options
@click.option("--json", "as_json", is_flag=True, help="Print {events, phases, total} as JSON.")
@click.option("--follow", is_flag=True, help="Print each phase as it completes, until the VM stops.")
@click.option("--chart", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also draw the timeline as FILE.png and FILE.svg (needs matplotlib).")
def phases(name: str | None, storage: Path | None, as_json: bool, follow: bool, chart: Path | None) -> None:
    """Print the boot-phase timeline of the running or last boot."""
    from winarm.timeline.events import read_events
    from winarm.timeline.phases import derive_phases, format_table, timeline_json

    try:
        vm, paths = _paths(name, storage)
    except WinarmError as error:
        fail(error)
    if not paths.events.exists():
        click.echo(f"winarm: no boot recorded for VM {vm!r} in {paths.state_dir}: run 'winarm up' first", err=True)
        sys.exit(EXIT_USAGE)
    if follow:
        from winarm.timeline.follow import follow_phases

        sys.exit(follow_phases(paths.events, click.echo))
    events = read_events(paths.events)
    if chart is not None:
        from winarm.timeline.chart import phases_chart

        try:
            written = phases_chart([p.as_dict() for p in derive_phases(events)], chart,
                                   title=f"winarm phases: VM {vm}")
        except WinarmError as error:
            fail(error)
        for path in written:
            click.echo(f"chart: {path}", err=True)
    if as_json:
        click.echo(json.dumps(timeline_json(events), indent=2))
        return
    running = events and events[-1].get("kind") != "exit"
    now = None
    if running:
        mtime = paths.events.stat().st_mtime
        now = float(events[-1]["t"]) + max(0.0, time.time() - mtime)
    for line in format_table(derive_phases(events), now=now):
        click.echo(line)


@main.command("bench")
@click.option("--variant", "variants", multiple=True, metavar="[NAME:]KEY=VALUE[,...]",
              help="A variant to compare (repeat; the first is the reference), e.g. drivers=windowsPE.")
@click.option("--set", "common", multiple=True, metavar="KEY=VALUE[,...]",
              help="A setting for every variant, e.g. ram=8G or tpm=no (repeatable).")
@click.option("--iso", default=None, help="The install ISO [env BOOT].")
@click.option("--drivers", default=None, help="virtio-win ISO or folder [env DRIVERS].")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 100), help="Boots per variant.")
@click.option("--from-scratch", is_flag=True, help="Every run is the whole install on a fresh disk (default: each "
              "variant is installed once, then every run cold-boots a copy of the installed disk).")
@click.option("--until", default="desktop-ready", show_default=True, metavar="MARKER[,MARKER]",
              help="The guest marker that ends a run.")
@click.option("--run-timeout", default=1800.0, show_default=True, type=click.FloatRange(1, 86400),
              help="Seconds a run may take before it is stopped and marked 'timeout'.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the result here.")
@click.option("--chart", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Draw the runs as FILE.png and FILE.svg (needs matplotlib).")
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="Where the runs' VMs and logs go [default STORAGE/bench/<time>].")
@click.option("--keep", is_flag=True, help="Keep the runs' disk images.")
def bench_command(variants: tuple[str, ...], common: tuple[str, ...], iso: str | None, drivers: str | None,  # noqa: C901, PLR0913, PLR0917
                  runs: int, from_scratch: bool, until: str, run_timeout: float, json_out: Path | None,
                  chart: Path | None, workdir: Path | None, keep: bool) -> None:
    """Boot the VM RUNS times per variant, alternating variants, and compare the phases: median, min, max and
    the ratio to the first variant, as a table, JSON and a chart."""
    from datetime import UTC, datetime

    from winarm.bench.runs import BenchPlan, Variant, format_table, parse_settings, parse_variant, run_bench, write_json

    try:
        parsed = [parse_variant(v) for v in variants] or [Variant("default", {})]
        if len({v.name for v in parsed}) != len(parsed):
            raise UserError("two variants have the same name: name them NAME:key=value")
        settings: dict[str, str] = {}
        for text in common:
            settings.update(parse_settings(text, "--set"))
        if drivers or os.environ.get("DRIVERS"):
            settings.setdefault("drivers", str(Path(drivers or os.environ["DRIVERS"]).absolute()))
        iso_text = iso or os.environ.get("BOOT") or os.environ.get("ISO")
        iso_path = Path(iso_text).absolute() if iso_text else None
        if iso_path is not None and not iso_path.is_file():
            raise UserError(f"ISO {str(iso_path)!r} does not exist or is not a file: give the install ISO")
        if iso_path is None and from_scratch:
            raise UserError("--from-scratch needs --iso (env BOOT): the ISO to install from")
        if iso_path is None and not from_scratch:
            raise UserError("the cold-boot benchmark installs each variant first: give --iso (env BOOT)")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        base = Path(os.environ.get("STORAGE") or default_storage()).expanduser().absolute()
        plan = BenchPlan(variants=parsed, common=settings, iso=iso_path, runs=runs, from_scratch=from_scratch,
                         run_timeout=run_timeout, until=until, workdir=(workdir or base / "bench" / stamp).absolute(),
                         keep=keep)
    except WinarmError as error:
        fail(error)
    click.echo(f"winarm bench: {len(parsed)} variants x {runs} runs, "
               f"{'from scratch' if from_scratch else 'cold boot of an installed disk'}, until {until}; "
               f"work in {plan.workdir}")
    result = run_bench(plan, click.echo)
    write_json(result, plan.workdir / "result.json")
    if json_out is not None:
        write_json(result, json_out)
    for line in format_table(result):
        click.echo(line)
    if chart is not None:
        from winarm.timeline.chart import benchmark_chart

        try:
            for path in benchmark_chart(result, chart):
                click.echo(f"chart: {path}")
        except WinarmError as error:
            fail(error)
    click.echo(f"result: {json_out or plan.workdir / 'result.json'}")
    failed = sum(r["status"] != "ok" for v in result["variants"] for r in v["runs"])
    sys.exit(1 if failed else 0)


@main.command("env")
def env_table() -> None:
    """List the environment variables winarm reads and the settings they map to."""
    from winarm.config.share import ENV_NAMES as SHARE_ENV_NAMES

    for setting, names in [*ENV_NAMES.items(), *SHARE_ENV_NAMES.items()]:
        flag = {"share": "--no-share (N)", "vnc_password": "(no flag: a file with --vnc-password-file)"}.get(
            setting, f"--{setting.replace('_', '-')}")
        click.echo(f"{', '.join(names):<20} {flag}")
    click.echo(f"{'KVM':<20} N forces --accel tcg")
    click.echo(f"{'WINARM_RUN_DIR':<20} base of the run directories (sockets), default {default_run_base()}")
    click.echo(f"{'WINARM_CACHE':<20} cache for the test guest, default ~/.cache/winarm")


from winarm.cli.inspect import inspect  # noqa: E402 - registered last; it imports its ISO reader only when run
from winarm.cli.testbed import testbed  # noqa: E402

main.add_command(testbed)

main.add_command(inspect)


from winarm.cli.unattend import unattend  # noqa: E402

main.add_command(unattend)

if __name__ == "__main__":  # pragma: no cover
    main()

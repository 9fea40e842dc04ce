"""``winarm down`` and ``winarm status``: stop a running VM, and ask how it is."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from winarm.cli.options import options, vm_paths
from winarm.config.table import VM
from winarm.config.values import Values
from winarm.config.vm import check_name
from winarm.errors import RuntimeFailure

EXIT_NOT_RUNNING = 3


@click.command()
@options(*VM)
@click.option("--wait/--no-wait", default=True, help="Wait until the daemon has stopped the VM [default: wait].")
def down(name: str | None, storage: str | None, wait: bool) -> None:
    """Stop a running VM gracefully (power button, then quit after the timeout; after 5 s when no OS or Windows
    Setup runs, which ignore the power button)."""
    from winarm.vm.control import ask

    vm, paths = vm_paths(name, storage)
    reply = ask(paths.control_socket, "down")
    if reply is None:
        click.echo(f"VM {vm!r} is not running")
        return
    pid = reply.get("daemon_pid")
    because = reply.get("because")
    quits = f": {because}, quit after {float(reply.get('timeout', 0)):g} s" if because else ""
    click.echo(f"stopping VM {vm!r}{quits}")
    if not wait or not isinstance(pid, int):
        click.echo("stop requested")
        return
    limit = float(reply.get("timeout", 105)) + 15
    if not wait_for_exit(pid, limit):
        raise RuntimeFailure(f"VM {vm!r} did not stop within {limit:.0f} s (daemon pid {pid})")
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


@click.command()
@options(*VM)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object (a list when no --name is given and several run)."
)
def status(name: str | None, storage: str | None, as_json: bool) -> None:
    """Show a VM's state (exit 0 running and healthy, 3 otherwise). Without --name: every running VM."""
    from winarm.vm.control import running_names, status_of
    from winarm.vm.status import status_lines

    values = Values({"name": name}, os.environ)
    if values.given("name") is None:
        names = running_names(Path(str(values["run_base"]))) or ["windows"]
    else:
        names = [check_name(str(values["name"]))]
    reports = [status_of(vm_paths(vm, storage)[1], vm) for vm in names]
    for line in status_lines(reports, as_json=as_json):
        click.echo(line)
    sys.exit(0 if all(r.healthy for r in reports) else EXIT_NOT_RUNNING)

"""``winarm bench``: boot variants of the VM side by side and compare their phases."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from winarm.cli.options import options
from winarm.config.values import Values
from winarm.errors import UserError

if TYPE_CHECKING:
    from winarm.bench.runs import BenchPlan


@click.command("bench")
@click.option("--variant", "variants", multiple=True, metavar="[NAME:]KEY=VALUE[,...]",
              help="A variant to compare (repeat; the first is the reference), e.g. drivers=windowsPE.")
@click.option("--set", "common", multiple=True, metavar="KEY=VALUE[,...]",
              help="A setting for every variant, e.g. ram=8G or tpm=no (repeatable).")
@options("iso", "drivers")
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
def bench(json_out: Path | None, chart: Path | None, **flags: Any) -> None:
    """Boot the VM RUNS times per variant, alternating variants, and compare the phases: median, min, max and
    the ratio to the first variant, as a table, JSON and a chart."""
    from winarm.bench.runs import format_table, run_bench, write_json

    plan = bench_plan(flags)
    click.echo(f"winarm bench: {len(plan.variants)} variants x {plan.runs} runs, "
               f"{'from scratch' if plan.from_scratch else 'cold boot of an installed disk'}, until {plan.until}; "
               f"work in {plan.workdir}")
    result = run_bench(plan, click.echo)
    write_json(result, plan.workdir / "result.json")
    if json_out is not None:
        write_json(result, json_out)
    for line in format_table(result):
        click.echo(line)
    if chart is not None:
        from winarm.timeline.chart import benchmark_chart

        for path in benchmark_chart(result, chart):
            click.echo(f"chart: {path}")
    click.echo(f"result: {json_out or plan.workdir / 'result.json'}")
    failed = sum(r["status"] != "ok" for v in result["variants"] for r in v["runs"])
    sys.exit(1 if failed else 0)


def bench_plan(flags: dict[str, Any]) -> BenchPlan:
    """The benchmark the options ask for, checked. Raises :class:`UserError`."""
    from datetime import UTC, datetime

    from winarm.bench.runs import BenchPlan, Variant, parse_settings, parse_variant

    parsed = [parse_variant(v) for v in flags["variants"]] or [Variant("default", {})]
    if len({v.name for v in parsed}) != len(parsed):
        raise UserError("two variants have the same name: name them NAME:key=value")
    settings: dict[str, str] = {}
    for text in flags["common"]:
        settings.update(parse_settings(text, "--set"))
    values = Values({"iso": flags["iso"], "drivers": flags["drivers"]}, os.environ)
    if values["drivers"]:
        settings.setdefault("drivers", str(Path(values["drivers"]).absolute()))
    iso = _iso(values["iso"], from_scratch=flags["from_scratch"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = flags["workdir"] or Path(str(values["storage"])).expanduser().absolute() / "bench" / stamp
    return BenchPlan(variants=parsed, common=settings, iso=iso, runs=flags["runs"], from_scratch=flags["from_scratch"],
                     run_timeout=flags["run_timeout"], until=flags["until"], workdir=workdir.absolute(),
                     keep=flags["keep"])


def _iso(text: str | None, *, from_scratch: bool) -> Path:
    """The install ISO every variant installs from. Raises :class:`UserError` when it is missing."""
    if not text:
        if from_scratch:
            raise UserError("--from-scratch needs --iso (env BOOT): the ISO to install from")
        raise UserError("the cold-boot benchmark installs each variant first: give --iso (env BOOT)")
    iso = Path(text).absolute()
    if not iso.is_file():
        raise UserError(f"ISO {str(iso)!r} does not exist or is not a file: give the install ISO")
    return iso

"""A hostile guest against the channel over a real unix socket: junk, header floods, slow clients, too many
connections, a flood of reports, winarm's own error while serving. Each is answered with its status (or cut off),
told to the daemon without flooding it, and a good report still goes through afterwards. Time is the rig's
clock, moved by the test, and the 5 s limit is 0.2 s here; nothing sleeps."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.vm.channel_rig import NO_CONTENT, Rig, post, reasons, run, status_of
from winarm.vm.channel_limits import SUPPRESSED
from winarm.vm.guest_channel import STATUS, GuestChannel, Limits
from winarm.vm.report_body import Report


def test_binary_junk_and_non_ascii_are_400(tmp_path: Path) -> None:
    junk = random.Random(12).randbytes(3000)

    async def scenario(rig: Rig) -> None:
        assert await rig.status(junk.replace(b"\n", b"")[:200] + b"\r\n\r\n") == 400
        assert await rig.status(b"\x00" * 100 + b"\n\n") == 400
        assert await rig.status("POST /report/drivérs HTTP/1.1\r\n\r\n".encode()) == 400
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n") == 400
        assert await rig.status(b"\r\n\r\n") == 400
        assert await rig.status(junk, eof=True) in (400, 414), "junk that may never end its first line"
        await rig.good()

    rig = run(tmp_path, scenario)
    assert reasons(rig)[:5] == ["request is not ASCII", "not an HTTP/1.x request line", "request is not ASCII",
                                "request is not ASCII", "not an HTTP/1.x request line"]
    assert rig.refusals[1][1] == {"status": 400, "line": "\\x00" * 16}, "junk is escaped and cut short"
    assert all(len(str(details)) < 300 for _, details in rig.refusals), "no junk is copied whole into the log"


def test_header_floods_are_431_and_bad_headers_400(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(post("drivers", headers="\n".join(f"X-{i}: y" for i in range(31)))) == 431
        assert await rig.send(post("drivers", headers="\n".join(f"X-{i}: y" for i in range(30)))) == NO_CONTENT
        assert await rig.status(post("drivers", headers="X-Big: " + "y" * 5000)) == 431
        endless = b"POST /report/drivers HTTP/1.1\r\n" + b"X-Again: and again\r\n" * 100_000
        assert await rig.status(endless) == 431, "an endless head is cut off, not read to its end"
        assert await rig.status(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n") == 414
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\n" + b"x" * 100_000) == 431
        assert await rig.status(b"POST /report/" + b"d" * 100_000) == 414, "a request line that never ends"
        assert await rig.status(post("drivers", headers="No colon here")) == 400
        assert await rig.status(post("drivers", headers=" folded: line")) == 400
        assert await rig.status(post("drivers", headers="Transfer-Encoding: chunked")) == 501
        assert await rig.status(post("drivers", headers="Content-Length: 0")) == 400, "two lengths"
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n") == 400
        await rig.good()

    rig = run(tmp_path, scenario)
    assert [d["status"] for _, d in rig.refusals[:10]] == [431, 431, 431, 414, 431, 414, 400, 400, 501, 400]
    assert rig.refusals[10:] == [(SUPPRESSED, {"count": 2, "reasons": {"bad Content-Length": 2}})]


def test_a_slow_client_is_cut_off_at_the_time_limit(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\n") == 408
        assert await rig.status(b"") == 408, "a client that says nothing"
        reader, writer = await asyncio.open_unix_connection(str(rig.path))
        writer.write(b"POST /rep")
        await writer.drain()
        writer.write(b"ort/drivers HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        assert status_of(await reader.read()) == 408, "trickling bytes does not stretch the limit"
        writer.close()
        await rig.good()

    rig = run(tmp_path, scenario, request_timeout=0.2)
    assert reasons(rig) == ["request not whole within 0.2 s"] * 3


def test_one_connection_over_the_limit_is_503_at_once(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        held = []
        for _ in range(4):
            reader, writer = await asyncio.open_unix_connection(str(rig.path))
            writer.write(b"POST /report/drivers HTTP/1.1\r\n")
            held.append((reader, writer))
        assert await rig.status(post("drivers")) == 503, "answered while the other four still wait"
        for reader, writer in held:
            writer.write_eof()
            assert status_of(await reader.read()) == 400
            writer.close()
        await rig.good()

    rig = run(tmp_path, scenario)
    assert rig.refusals[0] == ("too many connections", {"status": 503, "limit": 4})
    assert reasons(rig)[1:] == ["connection closed before the request was whole"] * 4


def test_a_flood_of_reports_is_429_and_the_bucket_refills(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        statuses = [await rig.status(post("hook", b"hook x 0\n")) for _ in range(300)]
        assert statuses == [204] * 20 + [429] * 280, "a burst of 20, then nothing while the clock stands"
        many = await asyncio.gather(*(rig.status(post("hook")) for _ in range(50)))
        assert set(many) <= {429, 503}, "fifty at once: refused for the rate or for the connections"
        rig.now += 0.5  # 2 a second: one report's worth
        await rig.good()
        assert await rig.status(post("hook")) == 429
        rig.now += 10.0
        await rig.good()

    rig = run(tmp_path, scenario)
    assert len(rig.reports) == 22 and rig.channel is not None and rig.channel.refused == 331
    assert rig.refusals[:10] == [("too many reports", {"status": 429, "burst": 20, "per_second": 2.0})] * 10
    assert reasons(rig)[10:] == [SUPPRESSED], "331 refusals told as 10 and one summary (at close)"
    assert rig.refusals[10][1]["count"] == 321


def test_summaries_come_at_most_every_10_s_while_a_flood_lasts(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        for _ in range(100):
            assert await rig.status(b"GET / HTTP/1.1\r\n\r\n") == 405
            rig.now += 0.5
        await rig.good()

    rig = run(tmp_path, scenario)
    told = reasons(rig)
    assert told[:10] == ["method not allowed"] * 10 and set(told[10:]) == {SUPPRESSED}
    assert len(told[10:]) == 5, "90 refusals over 45 s: a summary every 10 s, and the rest at close"
    assert sum(d["count"] for r, d in rig.refusals if r == SUPPRESSED) == 90


def test_an_error_while_serving_is_contained_and_counted(tmp_path: Path) -> None:
    calls: list[Report] = []

    def on_report(report: Report) -> None:
        calls.append(report)
        if len(calls) == 1:
            raise RuntimeError("the daemon's own bug")

    async def scenario(rig: Rig) -> None:
        assert rig.channel is not None
        rig.channel.on_report = on_report
        assert await rig.status(post("shutdown")) == 500
        assert await rig.send(post("shutdown")) == NO_CONTENT

    rig = run(tmp_path, scenario)
    assert calls == [Report("shutdown", ())] * 2
    assert rig.refusals == [("internal error", {"status": 500, "error": "RuntimeError: the daemon's own bug"})]


def test_closing_the_channel_ends_connections_and_tells_what_was_counted(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "report.sock")

    async def main() -> bytes:
        async with GuestChannel(rig.path, rig.reports.append, rig.refused, clock=rig.clock) as channel:
            for _ in range(11):
                assert await rig.status(b"GET / HTTP/1.1\r\n\r\n") == 405
            reader, writer = await asyncio.open_unix_connection(str(rig.path))
            writer.write(b"POST /report/drivers HTTP/1.1\r\n")
            # connections are taken in order: once a later one is answered, the held one is being served
            assert await rig.status(b"GET / HTTP/1.1\r\n\r\n") == 405
            assert channel.refused == 12
        cut = await reader.read()
        writer.close()
        return cut

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"", "the held connection is closed, not left open"
    assert reasons(rig) == ["method not allowed"] * 10 + [SUPPRESSED]
    assert rig.refusals[-1][1] == {"count": 2, "reasons": {"method not allowed": 2}}


any_request = st.one_of(st.binary(max_size=600), st.builds(
    lambda head, body: head + b"\r\n\r\n" + body,
    st.sampled_from([b"POST /report/drivers HTTP/1.1\r\nContent-Length: 12", b"POST /report/hook HTTP/1.0",
                     b"GET /report/drivers HTTP/1.1", b"POST /report/x HTTP/1.1\r\nContent-Length: 3"]),
    st.binary(max_size=40)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=any_request)
def test_any_bytes_get_a_known_status_and_the_channel_stays_up(tmp_path: Path, data: bytes) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(data, eof=True) in STATUS
        await rig.good()

    rig = run(tmp_path, scenario, request_timeout=0.5)
    assert all(details["status"] != 500 for _, details in rig.refusals), rig.refusals


def test_the_limits_are_the_channel_s_to_set(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.send(post("shutdown")) == NO_CONTENT
        assert await rig.status(post("shutdown")) == 429
        rig.now += 1000
        assert await rig.status(post("shutdown")) == 429, "a rate of 0 never refills"

    rig = run(tmp_path, scenario, limits=Limits(max_connections=1, burst=1, rate=0.0))
    assert len(rig.reports) == 1 and reasons(rig) == ["too many reports"] * 2

"""The guest channel over a real unix socket: good reports of every name answered 204 and handed on whole;
unknown names, other methods and bodies that break the rules refused with their status and told to the daemon.
(Windows itself cannot run here: the requests are the bytes curl sends through socat, written by hand.)"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from tests.unit.vm.channel_rig import NO_CONTENT, Rig, post, reasons, run
from winarm.guest import REPORT_NAMES
from winarm.vm.report_body import Report

BODIES = {
    "drivers": b"pass specialize\r\ndriver NetKVM 0\r\ndriver viostor 3010\r\ndriver vioinput 5\r\n",
    "first-logon": b"",
    "desktop-ready": b"user Docker\nsession 1\n",
    "hook": b"hook install-tools 0\nhook bad one 1\n",
    "shutdown": b"reason guest",
    "product-key": b"code -1073418160\r\n",
}


def test_a_good_report_of_each_name_is_answered_204_and_handed_on(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        assert oct(stat.S_IMODE(os.stat(rig.path).st_mode)) == oct(0o600), "only winarm's user may connect"
        for name in REPORT_NAMES:
            assert await rig.send(post(name, BODIES[name])) == NO_CONTENT, name
        assert await rig.send(post("desktop-ready", b"a 1\n", version="1.0", newline="\n")) == NO_CONTENT

    rig = run(tmp_path, scenario)
    assert rig.reports[:6] == [
        Report("drivers", (("pass", "specialize"), ("driver", "NetKVM 0"), ("driver", "viostor 3010"),
                           ("driver", "vioinput 5"))),
        Report("first-logon", ()),
        Report("desktop-ready", (("user", "Docker"), ("session", "1"))),
        Report("hook", (("hook", "install-tools 0"), ("hook", "bad one 1"))),
        Report("shutdown", (("reason", "guest"),)),
        Report("product-key", (("code", "-1073418160"),)),
    ]
    assert rig.reports[6] == Report("desktop-ready", (("a", "1"),)), "HTTP/1.0 with bare LF line ends"
    assert rig.refusals == [] and rig.channel is not None and rig.channel.accepted == 7


def test_a_report_without_content_length_has_an_empty_body(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.send(b"POST /report/shutdown HTTP/1.1\r\nHost: x\r\n\r\n") == NO_CONTENT

    assert run(tmp_path, scenario).reports == [Report("shutdown", ())]


@pytest.mark.parametrize("target", ["/report/nope", "/report/", "/report/drivers/", "/report/DRIVERS",
                                    "/report/drivers?x=1", "/report/../report/drivers", "/", "/reportdrivers",
                                    "http://10.0.2.5/report/drivers"])
def test_an_unknown_name_is_404(tmp_path: Path, target: str) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(f"POST {target} HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode()) == 404
        await rig.good()

    rig = run(tmp_path, scenario)
    assert rig.refusals == [("unknown report", {"status": 404, "target": target})]


@pytest.mark.parametrize(("request_line", "status"), [
    ("GET /report/drivers HTTP/1.1", 405), ("PUT /report/drivers HTTP/1.1", 405),
    ("DELETE /report/nope HTTP/1.0", 405), ("post /report/drivers HTTP/1.1", 400),
    ("POST /report/drivers HTTP/2.0", 400), ("POST /report/drivers", 400), ("POST  /report/drivers HTTP/1.1", 400),
    ("POST /report/drivers HTTP/1.1 extra", 400), ("", 400)])
def test_other_methods_are_405_and_other_request_lines_400(tmp_path: Path, request_line: str, status: int) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(f"{request_line}\r\nContent-Length: 0\r\n\r\n".encode()) == status
        await rig.good()

    rig = run(tmp_path, scenario)
    assert [d["status"] for _, d in rig.refusals] == [status] and rig.reports[:-1] == []


@pytest.mark.parametrize(("body", "why"), [
    (b"key value\nbad/key value\n", "line 2: the key"),
    (b"k\xc3\xa9y value\n", "not ASCII"),
    (b"key caf\xc3\xa9\n", "not ASCII"),
    (b"key tab\there\n", "line 1: the value"),
    (b"key " + b"v" * 201 + b"\n", "line 1: the value"),
    (b"k" * 65 + b" value\n", "line 1: the key"),
    (b"".join(b"k%d v\n" % i for i in range(65)), "more than 64 lines"),
    (b"key value\r\r\n", "line 1: the value"),
    (b"\x00\x01\x02", "line 1: the key"),
])
def test_a_body_that_is_not_key_value_lines_is_400(tmp_path: Path, body: bytes, why: str) -> None:
    async def scenario(rig: Rig) -> None:
        assert await rig.status(post("drivers", body)) == 400
        await rig.good()

    rig = run(tmp_path, scenario)
    ((reason, details),) = rig.refusals
    assert reason == "malformed body" and details["name"] == "drivers" and why in details["error"], details
    assert len(rig.reports) == 1


def test_the_largest_body_allowed_goes_through(tmp_path: Path) -> None:
    body = b"".join(b"k%02d %s\r\n" % (i, b"v" * 58) for i in range(64))
    assert len(body) == 4096

    async def scenario(rig: Rig) -> None:
        assert await rig.send(post("hook", body)) == NO_CONTENT

    rig = run(tmp_path, scenario)
    assert len(rig.reports[0].items) == 64 and rig.reports[0].values("k63") == ["v" * 58]


def test_huge_bodies_are_refused_by_their_length_and_by_what_is_sent(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        head = b"POST /report/drivers HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
        assert await rig.status(head % 4097) == 413, "the length alone is over the limit"
        assert await rig.status(head % 10**9 + b"x" * 100_000) == 413
        assert await rig.status(head % 10 + b"a b\n" * 50_000) == 400, "more bytes sent than the length says"
        assert await rig.status(b"POST /report/drivers HTTP/1.1\r\n\r\n" + b"a b\n" * 1000) == 411
        await rig.good()

    rig = run(tmp_path, scenario)
    assert reasons(rig) == ["body over 4096 bytes", "body over 4096 bytes", "more bytes than the Content-Length",
                            "a body without Content-Length"]
    assert rig.refusals[1][1] == {"status": 413, "length": 10**9}


def test_a_lying_content_length_times_out_or_is_short(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        lying = b"POST /report/drivers HTTP/1.1\r\nContent-Length: 100\r\n\r\npass x\n"
        assert await rig.status(lying) == 408, "the connection held open: the time limit ends it"
        assert await rig.status(lying, eof=True) == 400, "the guest hung up early"
        await rig.good()

    rig = run(tmp_path, scenario, request_timeout=0.2)
    assert reasons(rig) == ["request not whole within 0.2 s", "body shorter than its Content-Length"]


def test_a_client_waiting_for_100_continue_gets_it(tmp_path: Path) -> None:
    async def scenario(rig: Rig) -> None:
        reader, writer = await asyncio.open_unix_connection(str(rig.path))
        body = b"pass windowsPE\n"
        writer.write(post("drivers", body, headers="Expect: 100-continue").removesuffix(body))
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        assert await reader.read() == NO_CONTENT
        writer.close()

    rig = run(tmp_path, scenario)
    assert rig.reports == [Report("drivers", (("pass", "windowsPE"),))]

"""Fetching an ISO from an http(s) URL, against a real HTTP server on loopback that can cut a transfer short."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vmtools import winarm
from winarm.errors import RuntimeFailure, UserError
from winarm.media.download import fetch, file_name, is_url

PAYLOAD = bytes(range(256)) * 4096 * 3  # 3 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /win.iso with Range support; /cut.iso stops after half the first time."""

    cut_once = True
    ranges: list[str | None] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path not in ("/win.iso", "/cut.iso"):
            self.send_error(404, "Not Found")
            return
        Handler.ranges.append(self.headers.get("Range"))
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            if start >= len(PAYLOAD):
                self.send_error(416)
                return
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/cut.iso" and Handler.cut_once:
            Handler.cut_once = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops halfway
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    Handler.cut_once = True
    Handler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_names_and_urls() -> None:
    assert is_url("https://example.invalid/a.iso") and not is_url("/tmp/a.iso")
    assert file_name("http://h/path/Win11%20ARM64.iso?x=1") == "Win11_ARM64.iso"
    assert file_name("http://h/") == "download.iso"
    assert file_name("http://h/..%2F..%2Fetc%2Fpasswd") == "_.._etc_passwd"


def test_download_checked_and_reused(tmp_path: Path, server: str) -> None:
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    seen: list[int] = []
    path = fetch(f"{server}/win.iso", tmp_path, sha256=digest, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == PAYLOAD and seen[-1] == len(PAYLOAD)
    assert fetch(f"{server}/win.iso", tmp_path, sha256=digest) == path
    assert Handler.ranges == [None], "a complete download is not fetched again"


def test_a_cut_download_is_never_used_and_resumes(tmp_path: Path, server: str) -> None:
    with pytest.raises(RuntimeFailure, match="cut off at"):
        fetch(f"{server}/cut.iso", tmp_path, sha256=DIGEST)
    assert not (tmp_path / "cut.iso").exists()
    assert 0 < (tmp_path / "cut.iso.partial").stat().st_size < len(PAYLOAD)
    path = fetch(f"{server}/cut.iso", tmp_path, sha256=DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert Handler.ranges[-1] == f"bytes={len(PAYLOAD) // 2}-", "the second try asks only for the rest"


def test_a_wrong_checksum_deletes_the_download(tmp_path: Path, server: str) -> None:
    with pytest.raises(UserError, match="not 0000"):
        fetch(f"{server}/win.iso", tmp_path, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_404_is_one_line_exit_2_and_changes_nothing(tmp_path: Path, server: str) -> None:
    result = winarm("up", "--name", "t", "--storage", str(tmp_path), "--iso", f"{server}/missing.iso",
                    "--iso-sha256", DIGEST, "--no-tpm", "--disk-size", "1G")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "answered 404" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "a refused download leaves nothing behind"


def test_plain_http_without_a_checksum_is_refused_before_any_request(tmp_path: Path, server: str) -> None:
    """Issue 14: an http:// ISO was taken with no checksum, so anyone on the path could swap the image."""
    result = winarm("up", "--name", "t", "--storage", str(tmp_path), "--iso", f"{server}/win.iso", "--no-tpm",
                    "--disk-size", "1G")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "plain http" in result.stderr and "--iso-sha256" in result.stderr
    assert Handler.ranges == [] and list(tmp_path.iterdir()) == []


def test_more_than_the_cap_is_never_kept(tmp_path: Path, server: str) -> None:
    """Issue 14: no size cap. The server says 3 MiB; with a 1 MiB cap nothing is written."""
    with pytest.raises(UserError, match="larger than"):
        fetch(f"{server}/win.iso", tmp_path, sha256=DIGEST, max_bytes=2**20)
    assert list(tmp_path.iterdir()) == []

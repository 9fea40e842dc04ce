"""Shared fixtures: a fake host for pure config tests, the test guest ISO, and a per-test storage and run dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from winarm.config.host import HostFacts
from winarm.config.vm import GiB

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def host() -> HostFacts:
    """An x86_64 host with 16 GiB and 4 CPUs, no KVM: the facts config checks against."""
    return HostFacts(arch="x86_64", total_ram=16 * GiB, available_ram=12 * GiB, cpus=4, kvm_usable=False)


@pytest.fixture
def run_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A short run-directory base (unix socket paths must stay under 108 bytes)."""
    base = Path(f"/tmp/wa-{os.getpid()}-{len(os.listdir('/tmp')) % 1000}")
    base.mkdir(mode=0o700, exist_ok=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def share_root() -> Iterator[Path]:
    """A directory other users may enter, for shared folders (pytest's temporary directories are 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix="winarm-share-", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def folder(share_root: Path) -> Path:
    """A folder to share, owned by 4321:4322 (a uid with no account here), mode 0775."""
    shared = share_root / "shared"
    shared.mkdir()
    os.chown(shared, 4321, 4322)
    os.chmod(shared, 0o775)
    return shared


def cache_dir() -> Path:
    return Path(os.environ.get("WINARM_CACHE") or Path.home() / ".cache" / "winarm")


@pytest.fixture(scope="session")
def guest_iso() -> Path:
    """The plain test guest ISO (built from Debian packages, cached). Missing prerequisites fail loudly here:
    `make test` builds the guest first, so a failure means the build itself is broken."""
    from winarm_testbed.guest import build_guest

    return build_guest(cache_dir(), log=lambda line: None)


@pytest.fixture(scope="session")
def testbed_iso() -> Path:
    """The Windows-shaped test ISO: UDF bridge, install.wim, the guest that plays Windows Setup."""
    from winarm_testbed.windows_iso import build_windows_testbed

    return build_windows_testbed(cache_dir(), log=lambda line: None)


@pytest.fixture(scope="session")
def placeholder_drivers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtio-win tree with the real layout and names but placeholder files (the real drivers cannot be
    downloaded here)."""
    from winarm_testbed.virtio_tree import make_fake_virtio_tree

    return make_fake_virtio_tree(tmp_path_factory.mktemp("virtio") / "virtio-win")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fast tests first, the QEMU-booting ones last."""
    items.sort(key=lambda item: 1 if item.get_closest_marker("qemu") else 0)

"""The test ISO's CD-prompt options: ``drop_key`` (the loader drops the first key) and ``deaf_prompt`` (it takes
none), each a separate cached ISO with its marker in the CD's UDF tree, where grub.cfg looks for it. Their effect
under QEMU is tested in tests/system/test_firmware_boot.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cache_dir


def efi_boot(iso_path: Path) -> set[str]:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        return {c.file_identifier().decode() for c in iso.list_children(udf_path="/efi/boot") if c is not None}
    finally:
        iso.close()


@pytest.mark.parametrize(("option", "name"), [("drop_key", "DROP_KEY_PATH"), ("deaf_prompt", "DEAF_PROMPT_PATH")])
def test_each_option_is_a_separate_iso_with_its_marker_where_grub_looks(option: str, name: str) -> None:
    from winarm_testbed import windows_iso

    path = getattr(windows_iso, name)
    plain = windows_iso.build_windows_testbed(cache_dir(), log=lambda line: None)
    built = windows_iso.build_windows_testbed(cache_dir(), log=lambda line: None, **{option: True})
    assert built.parent != plain.parent, "cached apart: the plain ISO's prompt takes the first key"
    marker = path.rsplit("/", 1)[1]
    assert path.startswith("efi/boot/") and marker in efi_boot(built) and marker not in efi_boot(plain)
    assert "bootaa64.efi" in efi_boot(built), "otherwise the same medium"
    grub_cfg = (Path(windows_iso.__file__).parent / "grub.cfg").read_text()
    assert f'"$winarm_cd/{path}"' in grub_cfg, "grub.cfg looks for it on the CD it was loaded from"

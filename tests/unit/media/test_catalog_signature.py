"""A driver catalog's signature: Microsoft's for Windows, someone else's, or none (issue 13, item 7).

The catalogs are made in the test (tests/unit/media/catalogs.py): no Microsoft-signed catalog or key can be
had here, so "passes as Microsoft" is shown with a test root the test trusts explicitly, and the default,
pinned Microsoft root must refuse every self-made chain that copies Microsoft's names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from tests.unit.media.catalogs import INTERMEDIATE, PUBLISHER, ROOT, always, fake_microsoft_chain, issue, signed_catalog
from winarm.data import data_dir
from winarm.errors import UserError
from winarm.media.drivers import DriverRequest, pick_drivers
from winarm.media.signature import Signers, Verdict, catalog_name, check_catalog, check_driver, microsoft_signers
from winarm_testbed.virtio_tree import make_fake_virtio_tree

MICROSOFT_ROOT_2010_SHA1 = "3B1EFD3A66EA28B16697394703A72CA340A05BD5"
"""The thumbprint Windows lists for Microsoft Root Certificate Authority 2010 in its root store."""


def test_the_pinned_root_is_microsofts_root_2010() -> None:
    roots = microsoft_signers().roots
    assert [r.fingerprint(hashes.SHA1()).hex().upper() for r in roots] == [MICROSOFT_ROOT_2010_SHA1]
    assert microsoft_signers().publisher == PUBLISHER


def test_an_edited_root_is_refused(tmp_path: Path) -> None:
    doc = json.loads((data_dir("drivers") / "signers.json").read_text())
    doc["roots"][0]["spki_sha256"] = "00" * 32
    edited = tmp_path / "signers.json"
    edited.write_text(json.dumps(doc))
    with pytest.raises(UserError, match=r"is not the pinned key\): reinstall winarm"):
        microsoft_signers(edited)


def test_a_self_made_chain_with_microsofts_names_is_not_microsoft() -> None:
    """Not Microsoft's, and not refused either: a real catalog may leave out an intermediate, which looks the same
    from here (see the module), so it is unverified and warned about."""
    root, intermediate, publisher = fake_microsoft_chain()
    data = signed_catalog(publisher, intermediate.cert, root.cert)
    verdict = check_catalog(data, "viostor.cat")
    assert verdict.verdict is Verdict.UNVERIFIED and not verdict.microsoft and not verdict.refused
    assert verdict.found == (f"viostor.cat names {PUBLISHER!r} but does not chain to a pinned Microsoft root "
                             "within the catalog (not verified)")


def test_the_same_chain_passes_only_under_the_root_it_really_chains_to() -> None:
    """The chain check itself: trusted root given explicitly (the test's own), every link verified."""
    root, intermediate, publisher = fake_microsoft_chain()
    data = signed_catalog(publisher, intermediate.cert)
    trusted = check_catalog(data, "viostor.cat", Signers(PUBLISHER, (root.cert,)))
    assert trusted.verdict is Verdict.MICROSOFT
    assert trusted.found == f"viostor.cat is signed by {PUBLISHER} (chains to {ROOT})"
    other_root, _, _ = fake_microsoft_chain()
    assert check_catalog(data, "viostor.cat", Signers(PUBLISHER, (other_root.cert,))).verdict is Verdict.UNVERIFIED
    without_link = signed_catalog(publisher)
    assert check_catalog(without_link, "v.cat", Signers(PUBLISHER, (root.cert,))).verdict is Verdict.UNVERIFIED


def test_a_forged_link_with_the_right_names_breaks_the_chain() -> None:
    root, _, _ = fake_microsoft_chain()
    forged_intermediate = issue(INTERMEDIATE, issue(ROOT))
    publisher = issue(PUBLISHER, forged_intermediate, ca=False)
    data = signed_catalog(publisher, forged_intermediate.cert, *microsoft_signers().roots)
    assert check_catalog(data, "x.cat", Signers(PUBLISHER, (root.cert,))).verdict is Verdict.UNVERIFIED
    assert check_catalog(data, "x.cat").verdict is Verdict.UNVERIFIED, "carrying the real root proves nothing"


def test_a_catalog_signed_by_someone_else_names_the_signer() -> None:
    vendor = issue("Example Driver Vendor", ca=False)
    verdict = check_catalog(signed_catalog(vendor), "netkvm.cat")
    assert (verdict.verdict, verdict.found) == (Verdict.OTHER, "netkvm.cat is signed by 'Example Driver Vendor', "
                                                               "not by Microsoft")


@pytest.mark.parametrize(("data", "found"), [
    (b"placeholder catalog\n", "viostor.cat is not a readable PKCS#7 signature"),
    (b"", "viostor.cat is not a readable PKCS#7 signature"),
    (os.urandom(4096), "viostor.cat is not a readable PKCS#7 signature"),
    (b"\x30\x82\xff\xff\x06\x09", "viostor.cat is not a readable PKCS#7 signature"),
])
def test_garbage_is_unverified_not_refused(data: bytes, found: str) -> None:
    """What this reader cannot parse may still be a catalog Windows reads (none real could be tried here)."""
    verdict = check_catalog(data, "viostor.cat")
    assert verdict.verdict is Verdict.UNVERIFIED and not verdict.refused and verdict.found.startswith(found), verdict


def test_a_catalog_without_certificates_is_unsigned() -> None:
    vendor = issue("Example Driver Vendor", ca=False)
    verdict = check_catalog(signed_catalog(vendor, certificates=False), "viostor.cat")
    assert (verdict.verdict, verdict.found) == (Verdict.UNSIGNED, "viostor.cat is a PKCS#7 structure with no "
                                                                  "certificates (unsigned)")


def test_the_catalog_is_the_one_the_inf_names(tmp_path: Path) -> None:
    inf = tmp_path / "viostor.inf"
    inf.write_bytes("[Version]\r\nCatalogFile=plain.cat\r\nCatalogFile.NTarm64 = arm.cat ; arm64\r\n"
                    .encode("utf-16"))
    assert catalog_name(inf) == "arm.cat"
    inf.write_text("[Version]\r\ncatalogfile = Plain.CAT\r\n")
    assert catalog_name(inf) == "Plain.CAT"
    inf.write_text("[Version]\r\n")
    assert catalog_name(inf) == "viostor.cat"
    vendor = issue("Example Driver Vendor", ca=False)
    (tmp_path / "viostor.cat").write_bytes(signed_catalog(vendor))
    assert check_driver(tmp_path, "VIOSTOR.INF").verdict is Verdict.OTHER, "names matched ignoring case"
    inf.write_text("[Version]\r\nCatalogFile=gone.cat\r\n")
    assert check_driver(tmp_path, "viostor.inf").found == "gone.cat is missing (the driver has no catalog: unsigned)"


def request(secure_boot: bool) -> DriverRequest:
    return DriverRequest("11", "virtio-blk", "specialize", {"virtio-blk-pci", "virtio-net-pci"},
                         secure_boot=secure_boot)


def test_secure_boot_refuses_a_storage_driver_microsoft_did_not_sign(tmp_path: Path) -> None:
    vendor = issue("Example Driver Vendor", ca=False)
    for catalog, found in ((signed_catalog(vendor, certificates=False), "is a PKCS#7 structure with no certificates"),
                           (signed_catalog(vendor), "is signed by 'Example Driver Vendor', not by Microsoft")):
        tree = make_fake_virtio_tree(tmp_path / found[:8].strip(), catalog=always(catalog))
        with pytest.raises(UserError) as refused:
            pick_drivers(tree, request(secure_boot=True))
        message = str(refused.value)
        assert "\n" not in message and message.startswith(
            "viostor, the virtio-blk storage driver Setup loads in windowsPE, is not signed by Microsoft (viostor.cat "
            + found)
        assert message.endswith("with Secure Boot on Windows would not load it; use Microsoft-signed virtio-win "
                                "drivers or pass --no-secure-boot")
        off = pick_drivers(tree, request(secure_boot=False))
        assert [p.driver.name for p in off.boot_critical] == ["viostor"] and off.warnings() == []


def test_an_unverified_storage_driver_is_warned_a_trusted_one_passes(tmp_path: Path) -> None:
    root, intermediate, publisher = fake_microsoft_chain()
    signed = signed_catalog(publisher, intermediate.cert)
    tree = make_fake_virtio_tree(tmp_path / "virtio-win",
                                 catalog=lambda name: signed if name == "viostor" else b"placeholder catalog\n")
    unverified = pick_drivers(tree, request(secure_boot=True))
    assert [p.signature.verdict if p.signature else None for p in unverified.boot_critical] == [Verdict.UNVERIFIED]
    assert unverified.warnings()[0].startswith("viostor's signature could not be verified here (viostor.cat names")
    assert unverified.warnings()[0].endswith("should Windows not load it with Secure Boot on, start with "
                                             "--no-secure-boot")
    selection = pick_drivers(tree, request(secure_boot=True), signers=Signers(PUBLISHER, (root.cert,)))
    assert [(p.driver.name, p.signature.verdict if p.signature else None)
            for p in (*selection.boot_critical, *selection.others)] == [("viostor", Verdict.MICROSOFT),
                                                                      ("NetKVM", Verdict.UNVERIFIED)]
    assert selection.warnings() == [
        "NetKVM's signature could not be verified here (netkvm.cat is not a readable PKCS#7 signature (Unable to "
        "parse PKCS7 data)): should Windows not load it with Secure Boot on, start with --no-secure-boot"]

"""Who signed a driver's catalog (``.cat``): Microsoft for Windows, someone else, nobody, or not known here.

A Windows driver catalog is a DER PKCS#7 SignedData whose certificates include the signer's. Windows with
Secure Boot on loads a boot-start driver only when Microsoft signed it (WHQL or attestation signing, both
issued to "Microsoft Windows Hardware Compatibility Publisher"); winarm reads the catalog before the install
so a driver Windows would refuse is named before Setup stalls on a disk it cannot see.

What :func:`check_catalog` checks, with the ``cryptography`` package (no hand-written ASN.1):
- the file is a DER PKCS#7 structure that carries certificates (else: unsigned/unreadable);
- one of those certificates has the subject common name of ``publisher`` in ``drivers/signers.json``;
- that certificate chains to a pinned Microsoft root: each link's signature is verified with its issuer's
  public key (issuers taken from the same catalog), and the last link's with the root's key. The roots are
  Microsoft's published certificates, stored in ``drivers/signers.json`` and checked against the pinned
  SHA-256 of their public keys when read: a certificate that only copies Microsoft's names is refused.

What it does not check (Windows does all of this itself when it installs the driver):
- the signature over the catalog's content, and which certificate in the catalog made it (``cryptography``
  offers no PKCS#7 signature verification; the SignerInfo is not read), so a catalog that merely carries
  Microsoft's public certificates would pass;
- that the catalog's hashes match the driver's files;
- revocation, validity periods and time stamps, key usages and extended key usages, and the rest of the
  Authenticode and kernel-mode code-signing policy.
The verdict is a pre-flight warning for honest driver packages, not a security boundary. Since no real
virtio-win catalog could be read where winarm is built, only positive evidence refuses a driver (see
:attr:`CatalogSignature.refused`): no catalog, a catalog without certificates, or a signer that does not even
claim to be Microsoft's publisher. A catalog this reader cannot parse, or one whose publisher certificate names
Microsoft but whose chain to a pinned root is not all in the catalog (an intermediate left out), is
``unverified``: warned about, never refused, so a real Microsoft-signed driver is not turned away by a gap in
this check.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from winarm.data import data_dir
from winarm.errors import UserError

_SHA256 = hashes.SHA256()
MAX_CHAIN = 8
"""Links followed from the publisher's certificate towards a root (real chains have two or three)."""


class Verdict(StrEnum):
    """Who signed a catalog."""

    MICROSOFT = "microsoft"
    OTHER = "other"
    UNSIGNED = "unsigned"
    UNVERIFIED = "unverified"
    """Not read or not verified here: Windows decides (see the module)."""


@dataclass(frozen=True)
class CatalogSignature:
    """A catalog's verdict and what was found, in words (``found`` completes "viostor.cat is ...")."""

    verdict: Verdict
    found: str

    @property
    def microsoft(self) -> bool:
        """True when signed by Microsoft for Windows (as far as :func:`check_catalog` checks)."""
        return self.verdict is Verdict.MICROSOFT

    @property
    def refused(self) -> bool:
        """True on positive evidence that Microsoft did not sign it: unsigned, or signed by someone else."""
        return self.verdict in (Verdict.UNSIGNED, Verdict.OTHER)


@dataclass(frozen=True)
class Signers:
    """The publisher name that means Microsoft-signed-for-Windows, and the roots its certificate must chain to."""

    publisher: str
    roots: tuple[x509.Certificate, ...]


def spki_sha256(cert: x509.Certificate) -> str:
    """The SHA-256 (hex) of a certificate's DER SubjectPublicKeyInfo."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@cache
def microsoft_signers(path: Path | None = None) -> Signers:
    """The publisher and pinned roots of ``drivers/signers.json`` (or ``path``). Raises :class:`UserError` for
    an unreadable file or a root whose public key is not the pinned one."""
    source = path or data_dir("drivers") / "signers.json"
    try:
        doc = json.loads(source.read_text())
        roots = []
        for entry in doc["roots"]:
            cert = x509.load_pem_x509_certificate("\n".join(entry["pem"]).encode("ascii"))
            if spki_sha256(cert) != entry["spki_sha256"].lower():
                raise ValueError(f"{entry['name']} is not the pinned key")
            roots.append(cert)
        return Signers(str(doc["publisher"]), tuple(roots))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"signer list {source} cannot be read ({exc}): reinstall winarm") from None


def common_name(name: x509.Name) -> str:
    """The name's first common name, else its RFC 4514 string."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s subject is ``cert``'s issuer and its key verifies ``cert``'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def chains_to(cert: x509.Certificate, bag: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]) -> bool:
    """True when ``cert`` is one of ``roots`` (same public key) or chains to one, through issuers in ``bag``,
    every signature verified (see the module's docstring for what is not checked)."""
    pinned = {spki_sha256(root) for root in roots}
    current, seen = cert, set()
    for _ in range(MAX_CHAIN):
        if spki_sha256(current) in pinned or any(_issued_by(current, root) for root in roots):
            return True
        seen.add(current.fingerprint(_SHA256))
        issuer = next((c for c in bag if c.fingerprint(_SHA256) not in seen and _issued_by(current, c)), None)
        if issuer is None:
            return False
        current = issuer
    return False


def _signer_name(bag: Sequence[x509.Certificate]) -> str:
    """The common name of the catalog's apparent signer: its first certificate that is neither a CA nor a
    time-stamping one (the SignerInfo is not read), else its first certificate."""
    for cert in bag:
        try:
            if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                continue
        except x509.ExtensionNotFound:
            pass
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.TIME_STAMPING in usages:
                continue
        except x509.ExtensionNotFound:
            pass
        return common_name(cert.subject)
    return common_name(bag[0].subject)


def check_catalog(data: bytes, name: str, signers: Signers | None = None) -> CatalogSignature:
    """The verdict on one catalog file's bytes (``name`` is used in the words only). ``signers`` defaults to
    :func:`microsoft_signers`. Raises :class:`UserError` only for an unreadable signer list."""
    trusted = signers or microsoft_signers()
    try:
        bag = pkcs7.load_der_pkcs7_certificates(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        if "no certificate" not in reason.lower():  # cryptography's words for a SignedData without certificates
            return CatalogSignature(Verdict.UNVERIFIED, f"{name} is not a readable PKCS#7 signature ({reason})")
        bag = []
    if not bag:
        return CatalogSignature(Verdict.UNSIGNED, f"{name} is a PKCS#7 structure with no certificates (unsigned)")
    claimed = [c for c in bag if common_name(c.subject) == trusted.publisher]
    if any(chains_to(c, bag, trusted.roots) for c in claimed):
        root = ", ".join(common_name(r.subject) for r in trusted.roots)
        return CatalogSignature(Verdict.MICROSOFT, f"{name} is signed by {trusted.publisher} (chains to {root})")
    if claimed:
        return CatalogSignature(Verdict.UNVERIFIED, f"{name} names {trusted.publisher!r} but does not chain to a "
                                                    "pinned Microsoft root within the catalog (not verified)")
    return CatalogSignature(Verdict.OTHER, f"{name} is signed by {_signer_name(bag)!r}, not by Microsoft")


CATALOG_LINE = re.compile(r"^\s*CatalogFile(\.[A-Za-z0-9]+)?\s*=\s*([^\s;]+)", re.IGNORECASE | re.MULTILINE)


def _inf_text(data: bytes) -> str:
    """An INF's text: UTF-16 when it starts with a byte-order mark (as many INFs do), else Latin-1."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    return data.decode("latin-1")


def catalog_name(inf: Path) -> str:
    """The catalog an INF names: ``CatalogFile.NTarm64=`` when present, else ``CatalogFile=``, else the INF's
    own stem with ``.cat`` (the virtio-win convention). An unreadable INF gives the stem's name."""
    try:
        found = {(m.group(1) or "").lower(): m.group(2) for m in CATALOG_LINE.finditer(_inf_text(inf.read_bytes()))}
    except OSError:
        found = {}
    return found.get(".ntarm64") or found.get("") or f"{inf.stem}.cat"


def check_driver(folder: Path, inf: str, signers: Signers | None = None) -> CatalogSignature:
    """The verdict on the catalog of the driver whose INF is ``folder/inf`` (names matched ignoring case).
    Raises :class:`UserError` only for an unreadable signer list."""
    by_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    inf_path = by_name.get(inf.lower(), folder / inf)
    name = catalog_name(inf_path)
    cat = by_name.get(name.lower())
    if cat is None:
        return CatalogSignature(Verdict.UNSIGNED, f"{name} is missing (the driver has no catalog: unsigned)")
    try:
        data = cat.read_bytes()
    except OSError as exc:
        return CatalogSignature(Verdict.UNSIGNED, f"{name} cannot be read ({exc.strerror or exc})")
    return check_catalog(data, cat.name, signers)


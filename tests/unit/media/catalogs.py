"""Driver catalogs made in the test: PKCS#7 SignedData signed by certificates the test creates.

No Microsoft-signed catalog can be had here (nor Microsoft's keys): the chains below copy Microsoft's names
only, which is exactly what winarm must not be fooled by.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

ROOT = "Microsoft Root Certificate Authority 2010"
INTERMEDIATE = "Microsoft Windows Third Party Component CA 2014"
PUBLISHER = "Microsoft Windows Hardware Compatibility Publisher"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def issue(name: str, issuer: Issued | None = None, *, ca: bool = True) -> Issued:
    """A certificate for the common name ``name`` (Microsoft's organisation fields too), signed by ``issuer``
    (self-signed without one), with a fresh P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Microsoft Corporation"),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer.key if issuer else key, hashes.SHA256())
    )
    return Issued(cert, key)


def fake_microsoft_chain() -> tuple[Issued, Issued, Issued]:
    """A self-made root, intermediate and publisher under Microsoft's names: (root, intermediate, publisher)."""
    root = issue(ROOT)
    intermediate = issue(INTERMEDIATE, root)
    return root, intermediate, issue(PUBLISHER, intermediate, ca=False)


def signed_catalog(signer: Issued, *extra: x509.Certificate, certificates: bool = True) -> bytes:
    """A DER PKCS#7 SignedData over placeholder content, signed by ``signer``, carrying its certificate and
    ``extra`` ones (none at all without ``certificates``: a catalog that names no signer)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(b"placeholder catalog content").add_signer(
        signer.cert, signer.key, hashes.SHA256())
    for cert in extra:
        builder = builder.add_certificate(cert)
    options = [pkcs7.PKCS7Options.Binary] + ([] if certificates else [pkcs7.PKCS7Options.NoCerts])
    return builder.sign(serialization.Encoding.DER, options)


def always(data: bytes) -> Callable[[str], bytes]:
    """A catalog maker (for ``make_fake_virtio_tree``) that gives every driver ``data``."""
    return lambda _name: data

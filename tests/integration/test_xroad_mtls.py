"""Mutual TLS between haqq and its security server, over a real socket: with haqq's client
certificate the query is answered; without it, or trusting the wrong CA, it is refused."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from haqq.adapters.institutions.simulated import SimulatedInstitutions
from haqq.adapters.xroad.asgi import make_app
from haqq.adapters.xroad.client import XRoadInstitutions, XRoadSettings
from haqq.adapters.xroad.directory import load_directory
from haqq.adapters.xroad.errors import XRoadError
from haqq.adapters.xroad.providers import simulated_providers
from haqq.adapters.xroad.security_server import SecurityServer
from haqq.ports import Service
from tests.helpers import country_query, generated_country, serving

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    folder: Path, stem: str, cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *, ca: bool = False, server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", "haqq test CA", None, ca=True)
    _issue(folder, "server", "security server", ca, server=True)
    _issue(folder, "client", "AZ/GOV/MLSPP/HAQQ", ca)
    _issue(folder, "other-ca", "someone else's CA", None, ca=True)
    return folder


@pytest.fixture(scope="module")
def country(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_country(tmp_path_factory, population=1000, seed=3)


@pytest.fixture(scope="module")
def server_url(pki: Path, country: Path) -> Iterator[str]:
    directory = load_directory()
    app = make_app(SecurityServer(directory, simulated_providers(directory, SimulatedInstitutions(country))))
    with serving(
        app,
        ssl_certfile=str(pki / "server.pem"), ssl_keyfile=str(pki / "server.key"),
        ssl_ca_certs=str(pki / "ca.pem"), ssl_cert_reqs=ssl.CERT_REQUIRED,
    ) as port:
        yield f"https://127.0.0.1:{port}"


def _client(url: str, pki: Path, *, cert: bool = True, ca: str = "ca") -> XRoadInstitutions:
    return XRoadInstitutions(
        load_directory(),
        XRoadSettings(
            url=url, cert=(pki / "client.pem", pki / "client.key") if cert else None,
            verify=pki / f"{ca}.pem", attempts=1,
        ),
    )


def test_with_the_client_certificate_the_query_is_answered(server_url: str, pki: Path, country: Path) -> None:
    [row] = country_query(country, "SELECT fin FROM persons ORDER BY fin LIMIT 1")
    xr = _client(server_url, pki)
    answer = xr.query(Service.CIVIL_PERSON, [row["fin"]], as_of=NOW, purpose="test")
    xr.close()
    assert row["fin"] in answer.records
    assert answer.exchange is not None and answer.exchange.request_hash


def test_without_a_client_certificate_the_server_refuses(server_url: str, pki: Path) -> None:
    xr = _client(server_url, pki, cert=False)
    with pytest.raises(XRoadError):
        xr.query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=NOW, purpose="test")
    xr.close()


def test_a_server_signed_by_an_untrusted_ca_is_refused(server_url: str, pki: Path) -> None:
    xr = _client(server_url, pki, ca="other-ca")
    with pytest.raises(XRoadError, match="unreachable|CERTIFICATE|certificate"):
        xr.query(Service.CIVIL_PERSON, ["AAAAAA1"], as_of=NOW, purpose="test")
    xr.close()

"""Herald's certificate is verified; a self-signed Herald works once its CA bundle is given."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from octoprint_herald.client import HeraldClient, HeraldError

from tests.plugin.receiver import Receiver


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def self_signed_herald(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("Herald test CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("127.0.0.1", server_key, ca_cert.subject, ca_key, ca=False)
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    receiver = Receiver(tls=context)
    yield receiver, str(tmp_path / "ca.pem")
    receiver.close()


def test_a_self_signed_herald_is_refused_by_default_and_accepted_with_its_ca(self_signed_herald):
    receiver, ca_bundle = self_signed_herald
    with pytest.raises(HeraldError, match="TLS certificate was not accepted.*CA bundle"):
        HeraldClient(receiver.url, key="hpk_x", timeout=(3, 3)).verify_key()
    assert receiver.requests == []  # the key was never sent to an unverified server

    answer = HeraldClient(receiver.url, key="hpk_x", verify=ca_bundle, timeout=(3, 3)).verify_key()
    assert answer["printer_id"] == "p1"
    assert receiver.requests[0].headers["Authorization"] == "Bearer hpk_x"


def test_the_plugin_uses_the_ca_bundle_from_its_settings(self_signed_herald, make_plugin, tmp_path):
    receiver, ca_bundle = self_signed_herald
    plugin = make_plugin(herald_url=receiver.url, printer_key="hpk_k", ca_bundle=ca_bundle)
    assert plugin._client().verify_key()["name"] == "Prusa"
    missing = make_plugin(herald_url=receiver.url, ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(HeraldError, match="does not exist"):
        missing._client()

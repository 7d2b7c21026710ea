"""Rich Graph notifications: the app's certificate and the decryption of ``encryptedContent``.

The emulator's ``encrypt_resource_data`` plays Graph (RSA-OAEP-SHA1 key, HMAC-SHA256 over
the ciphertext, AES-256-CBC/PKCS7 with IV = key[:16]); every tampering must be refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import adapters.notification_crypto as crypto
from adapters.graph_webhook import client_state_for, meeting_call_events_resource, parse_call_ended
from adapters.notification_crypto import CertificateError, ForgedContent, NotificationCertificate
from appointments.settings import Settings, SettingsError
from devhost.graph_emulator.crypto import encrypt_resource_data, throwaway_certificate

CERT_ID = "unit-notifications-1"
EVENT = {
    "@odata.type": "#microsoft.graph.callEvent",
    "id": "event-9",
    "eventType": "callEnded",
    "eventDateTime": "2030-03-04T11:02:03.1234567Z",
}


@pytest.fixture(scope="module")
def pem() -> str:
    return throwaway_certificate()


@pytest.fixture(scope="module")
def other_pem() -> str:
    return throwaway_certificate("someone-else")


@pytest.fixture(scope="module")
def cert(pem: str) -> NotificationCertificate:
    return NotificationCertificate.load(pem, CERT_ID)


def encrypted(cert: NotificationCertificate, resource: dict[str, Any] | None = None) -> dict[str, str]:
    return encrypt_resource_data(resource or EVENT, cert.public_certificate, cert.certificate_id)


def flip(b64: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip_with_the_emulators_encryption(cert: NotificationCertificate) -> None:
    """What the emulator encrypts exactly as Graph does, the app decrypts back to the resource."""
    assert cert.decrypt(encrypted(cert)) == EVENT


def test_the_public_certificate_is_base64_der_without_the_key(
    cert: NotificationCertificate, pem: str
) -> None:
    """encryptionCertificate carries only the public certificate; the thumbprint is its hex SHA-1."""
    der = base64.b64decode(cert.public_certificate)
    parsed = x509.load_der_x509_certificate(der)
    assert parsed == x509.load_pem_x509_certificate(pem.encode())
    assert b"PRIVATE" not in der
    assert len(cert.thumbprint) == 40 and cert.thumbprint == cert.thumbprint.upper()


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("dataSignature", "dataSignature does not match"),
        ("data", "dataSignature does not match"),  # the HMAC covers the ciphertext
        ("dataKey", "dataKey does not decrypt"),
    ],
)
def test_tampering_is_refused(cert: NotificationCertificate, field: str, reason: str) -> None:
    content = encrypted(cert)
    content[field] = flip(content[field], 5)
    with pytest.raises(ForgedContent, match=reason):
        cert.decrypt(content)


def test_a_key_of_the_attackers_choice_does_not_match_the_signature(cert: NotificationCertificate) -> None:
    """Swapping in another item's dataKey (a valid key for us) breaks the HMAC of this item's data."""
    content, other = encrypted(cert), encrypted(cert, {"eventType": "callStarted"})
    content["dataKey"] = other["dataKey"]
    with pytest.raises(ForgedContent, match="dataSignature"):
        cert.decrypt(content)


def test_the_signature_is_checked_before_anything_is_decrypted(
    cert: NotificationCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong HMAC never reaches AES (no padding oracle)."""

    def no_aes(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("AES ran before the signature was verified")

    monkeypatch.setattr(crypto, "Cipher", no_aes)
    content = encrypted(cert)
    content["dataSignature"] = flip(content["dataSignature"])
    with pytest.raises(ForgedContent, match="dataSignature"):
        cert.decrypt(content)


def test_signature_comparison_is_constant_time(
    cert: NotificationCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HMAC is compared with hmac.compare_digest."""
    seen: list[tuple[bytes, bytes]] = []
    real = crypto.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(crypto.hmac, "compare_digest", spy)
    cert.decrypt(encrypted(cert))
    assert any(len(a) == 32 and len(b) == 32 for a, b in seen)  # the SHA-256 MACs


def test_a_wrong_certificate_id_is_refused(cert: NotificationCertificate) -> None:
    content = encrypted(cert)
    content["encryptionCertificateId"] = "someone-elses-cert"
    with pytest.raises(ForgedContent, match="encryptionCertificateId"):
        cert.decrypt(content)


def test_a_wrong_or_missing_thumbprint_is_refused(cert: NotificationCertificate) -> None:
    content = encrypted(cert)
    content["encryptionCertificateThumbprint"] = "00" * 20
    with pytest.raises(ForgedContent, match="Thumbprint"):
        cert.decrypt(content)
    del content["encryptionCertificateThumbprint"]
    with pytest.raises(ForgedContent, match="Thumbprint is missing"):
        cert.decrypt(content)


def test_the_thumbprint_is_compared_case_insensitively(cert: NotificationCertificate) -> None:
    content = encrypted(cert)
    content["encryptionCertificateThumbprint"] = content["encryptionCertificateThumbprint"].lower()
    assert cert.decrypt(content) == EVENT


def test_content_for_another_certificate_is_refused(cert: NotificationCertificate, other_pem: str) -> None:
    """Encrypted for a different key but labelled as ours: the key does not decrypt."""
    other = NotificationCertificate.load(other_pem, CERT_ID)
    content = encrypt_resource_data(EVENT, other.public_certificate, CERT_ID)
    content["encryptionCertificateThumbprint"] = cert.thumbprint
    with pytest.raises(ForgedContent, match="dataKey"):
        cert.decrypt(content)


@pytest.mark.parametrize("field", ["data", "dataKey", "dataSignature", "encryptionCertificateId"])
def test_missing_or_non_base64_fields_are_refused(cert: NotificationCertificate, field: str) -> None:
    content: dict[str, Any] = encrypted(cert)
    content[field] = None
    with pytest.raises(ForgedContent):
        cert.decrypt(content)
    content[field] = "not base64!"
    with pytest.raises(ForgedContent):
        cert.decrypt(content)


def test_pem_with_escaped_newlines_and_key_vault_pkcs12_both_load(
    pem: str, cert: NotificationCertificate
) -> None:
    """App settings sometimes hold \\n escapes; a Key Vault certificate reference yields base64 PKCS#12."""
    assert NotificationCertificate.load(pem.replace("\n", "\\n"), CERT_ID).thumbprint == cert.thumbprint
    key: Any = serialization.load_pem_private_key(pem.encode(), password=None)
    bundle = pkcs12.serialize_key_and_certificates(
        b"x", key, x509.load_pem_x509_certificate(pem.encode()), None, serialization.NoEncryption()
    )
    loaded = NotificationCertificate.load(base64.b64encode(bundle).decode(), CERT_ID)
    assert loaded.decrypt(encrypted(cert)) == EVENT


def test_unusable_certificates_are_refused(pem: str, other_pem: str) -> None:
    cert_only = pem[: pem.index("-----BEGIN PRIVATE KEY")]
    key_only = other_pem[other_pem.index("-----BEGIN PRIVATE KEY") :]
    with pytest.raises(CertificateError, match="private key"):
        NotificationCertificate.load(cert_only, CERT_ID)
    with pytest.raises(CertificateError, match="does not belong"):
        NotificationCertificate.load(cert_only + key_only, CERT_ID)
    with pytest.raises(CertificateError, match="neither PEM nor"):
        NotificationCertificate.load("@Microsoft.KeyVault(SecretUri=https://v/secrets/c/)", CERT_ID)
    with pytest.raises(CertificateError, match="128"):
        NotificationCertificate.load(pem, "x" * 129)


def test_no_key_material_in_reprs(pem: str, cert: NotificationCertificate) -> None:
    settings = Settings.from_env(
        {
            "DEV_MODE": "true",
            "GRAPH_NOTIFICATION_CERTIFICATE": pem,
            "GRAPH_NOTIFICATION_CERTIFICATE_ID": CERT_ID,
        }
    )
    assert settings.graph_notification_certificate.value == pem.strip()
    assert settings.graph_notification_certificate_id == CERT_ID
    for text in (repr(settings), str(settings), repr(cert)):
        assert "PRIVATE" not in text and "MII" not in text


def test_certificate_and_id_are_set_together() -> None:
    with pytest.raises(SettingsError, match="together"):
        Settings.from_env({"DEV_MODE": "true", "GRAPH_NOTIFICATION_CERTIFICATE": "x"})
    with pytest.raises(SettingsError, match="together"):
        Settings.from_env({"DEV_MODE": "true", "GRAPH_NOTIFICATION_CERTIFICATE_ID": "x"})


# --- through the webhook parser ------------------------------------------------------------------

SECRET = "unit-test-secret-0123456789abcdef"
CODE = "K7Q2MX"
RESOURCE = meeting_call_events_resource(
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"
)


def rich_item(content: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "subscriptionId": "sub-1",
        "changeType": "updated",
        "resource": RESOURCE,
        "clientState": client_state_for(SECRET, CODE),
        "resourceData": {"@odata.type": "#microsoft.graph.callEvent", "id": "event-9"},
        "encryptedContent": content,
        **extra,
    }


def batch_of(*items: dict[str, Any], cert: NotificationCertificate) -> Any:
    return parse_call_ended(json.dumps({"value": list(items)}).encode(), CODE, SECRET, decrypt=cert.decrypt)


def test_a_genuine_rich_call_ended_is_believed(cert: NotificationCertificate) -> None:
    batch = batch_of(rich_item(encrypted(cert)), cert=cert)
    [notice] = batch.call_ended
    assert notice.notification_id == "event-9"
    assert notice.ended_at is not None
    assert (batch.forged, batch.ignored) == ([], 0)


def test_the_call_event_type_spelling_is_understood(cert: NotificationCertificate) -> None:
    """The callEvent resource type names the field callEventType."""
    event = {"id": "e", "callEventType": "callEnded", "eventDateTime": "2030-03-04T11:02:03Z"}
    assert len(batch_of(rich_item(encrypted(cert, event)), cert=cert).call_ended) == 1


def test_a_tampered_rich_notification_is_forged_not_ignored(cert: NotificationCertificate) -> None:
    content = encrypted(cert)
    content["data"] = flip(content["data"], 3)
    batch = batch_of(rich_item(content), cert=cert)
    assert batch.call_ended == []
    assert [f.reason for f in batch.forged] == ["encryptedContent: dataSignature does not match"]


def test_in_rich_mode_clear_event_details_are_not_believed(cert: NotificationCertificate) -> None:
    """Details next to encryptedContent, or in place of it, count for nothing."""
    plain = rich_item(encrypted(cert, {"eventType": "callStarted"}))
    plain["resourceData"]["eventType"] = "callEnded"
    unencrypted = rich_item({})
    del unencrypted["encryptedContent"]
    unencrypted["resourceData"]["eventType"] = "callEnded"
    batch = batch_of(plain, unencrypted, cert=cert)
    assert batch.call_ended == []
    assert batch.ignored == 2


def test_the_client_state_is_checked_before_decrypting(cert: NotificationCertificate) -> None:
    """A wrong clientState is forged for that reason; the content is never looked at."""
    batch = batch_of(rich_item({"data": "x"}, clientState="guess"), cert=cert)
    assert [f.reason for f in batch.forged] == ["clientState mismatch"]

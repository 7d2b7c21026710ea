"""Graph's side of rich notifications, for the emulator, plus a throwaway certificate for local runs.

``encrypt_resource_data`` does what Microsoft Graph does for a subscription with
``includeResourceData`` (learn.microsoft.com/graph/change-notifications-with-resource-data,
"Decrypting resource data"; ``changeNotificationEncryptedContent``): a fresh 32-byte AES key
per item; ``data`` = AES-256-CBC/PKCS7 of the resource JSON with IV = the key's first 16
bytes; ``dataSignature`` = HMAC-SHA256(key, data bytes); ``dataKey`` = the key encrypted
with the subscriber's certificate, RSA/ECB/OAEPWithSHA1AndMGF1Padding; plus the
subscriber's ``encryptionCertificateId`` and the certificate's SHA-1 thumbprint (hex).
Everything base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from cryptography.x509.oid import NameOID


class BadCertificate(ValueError):
    """The subscription's encryptionCertificate is not a base64 DER X.509 RSA certificate."""


def load_encryption_certificate(value: str) -> x509.Certificate:
    """The certificate a subscriber sent, as Graph checks it: base64 DER, RSA, 2048-4096 bits."""
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise BadCertificate("encryptionCertificate is not a base64-encoded X.509 certificate") from exc
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or not 2048 <= key.key_size <= 4096:
        raise BadCertificate("encryptionCertificate must hold an RSA key of 2048 to 4096 bits")
    return certificate


def encrypt_resource_data(
    resource: Mapping[str, Any], encryption_certificate: str, certificate_id: str
) -> dict[str, str]:
    """One item's ``encryptedContent`` for ``resource``, encrypted for the subscriber's certificate."""
    certificate = load_encryption_certificate(encryption_certificate)
    public = certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    key = os.urandom(32)
    padder = PKCS7(128).padder()
    plain = padder.update(json.dumps(resource).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(plain) + encryptor.finalize()
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - Graph's suite
    return {
        "data": base64.b64encode(data).decode(),
        "dataSignature": base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode(),
        "dataKey": base64.b64encode(public.encrypt(key, oaep)).decode(),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
    }


def throwaway_certificate(common_name: str = "verkkoneuvottelu-dev-notifications", days: int = 1) -> str:
    """A self-signed RSA-2048 certificate and its private key as one PEM string, made in memory.

    For ``make run`` and the tests only: production uses a Key Vault certificate.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ).decode()


class TestSigningKey:
    """The emulator's stand-in for the Microsoft identity platform key that signs validationTokens.

    A fresh RSA key per emulator; its public half is the test JWKS (``jwks_json``, also served
    at ``/_emulator/keys``) that the app is pointed at with ``GRAPH_NOTIFICATION_JWKS``.
    Tokens carry the claims Graph documents: ``aud`` = the subscribing app, ``iss`` / ``tid``
    = its tenant, ``azp`` = Graph change tracking, a one-hour lifetime.
    """

    CHANGE_TRACKING_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = hashlib.sha256(os.urandom(16)).hexdigest()[:16]

    def jwks_json(self) -> str:
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def token(self, app_id: str, tenant_id: str, *, now: float | None = None, **overrides: Any) -> str:
        import time

        import jwt

        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "aud": app_id,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "tid": tenant_id,
            "azp": self.CHANGE_TRACKING_APP_ID,
            "iat": issued,
            "nbf": issued,
            "exp": issued + 3600,
            **overrides,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

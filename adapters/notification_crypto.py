"""Rich (encrypted) Graph change notifications: the app's certificate and the decryption.

Microsoft documents that basic notifications for ``meetingCallEvents`` carry no event
details; to learn that a call ended the subscription asks for resource data
(``includeResourceData: true``) and hands Graph a public certificate
(``encryptionCertificate``, base64 DER) under an id of our choosing
(``encryptionCertificateId``). Each notification then carries ``encryptedContent``.
"Set up change notifications that include resource data", section "Decrypting resource
data" (learn.microsoft.com/graph/change-notifications-with-resource-data) and the
``changeNotificationEncryptedContent`` resource type give the scheme:

* ``dataKey``: base64 of a symmetric key encrypted with our public key,
  RSA/ECB/OAEPWithSHA1AndMGF1Padding (OAEP, SHA-1, MGF1-SHA-1, no label);
* ``dataSignature``: base64 HMAC-SHA256, keyed with that symmetric key, over the
  base64-*decoded* ``data``; compare it first and do not decrypt when it differs;
* ``data``: base64 of AES-CBC with PKCS7 padding under the symmetric key (32 bytes,
  AES-256), the IV being the key's first 16 bytes; the plaintext is the resource as JSON;
* ``encryptionCertificateId`` / ``encryptionCertificateThumbprint`` (hex SHA-1 of the
  certificate) name the certificate Graph used.

Note what this does and does not prove: anyone holding the public certificate can make a
well-formed ``encryptedContent``, so the HMAC shows integrity, not origin. Origin rests
on the per-appointment clientState that ``adapters.graph_webhook`` checks first, and on
the POST's ``validationTokens``, JWTs signed by the Microsoft identity platform
(``ValidationTokenVerifier`` below).

``cryptography`` is a runtime dependency of azure-identity/msal, so it is in Azure too.
This module is imported only when a certificate is configured (``bootstrap``), never by
the webhook's pure parser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from cryptography.hazmat.primitives.serialization import pkcs12

CERTIFICATE_ID_MAX = 128  # Graph: the identifier can be up to 128 characters
MIN_KEY_BITS, MAX_KEY_BITS = 2048, 4096  # Graph: RSA, 2,048 to 4,096 bits
# A callEvent is a few hundred bytes; refusing big blobs keeps RSA/AES work per request bounded.
MAX_DATA_CHARS = 256 * 1024
_AES_KEY_SIZES = frozenset({16, 24, 32})


class CertificateError(ValueError):
    """GRAPH_NOTIFICATION_CERTIFICATE cannot be used (message never includes key material)."""


class ForgedContent(ValueError):
    """``encryptedContent`` failed a check: wrong certificate, bad signature, undecryptable."""


def oaep() -> padding.OAEP:
    """RSA/ECB/OAEPWithSHA1AndMGF1Padding, as Graph encrypts ``dataKey``."""
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303 - Graph's documented suite


def thumbprint_of(certificate: x509.Certificate) -> str:
    """Hex SHA-1 of the DER certificate, upper case (Graph's encryptionCertificateThumbprint)."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - an identifier, not a MAC


class NotificationCertificate:
    """The app's notification certificate: public part for Graph, private key for decrypting.

    Build it with :meth:`load`; ``repr`` shows only the id and thumbprint.
    """

    def __init__(self, certificate_id: str, certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
        if not certificate_id or len(certificate_id) > CERTIFICATE_ID_MAX:
            raise CertificateError(
                f"GRAPH_NOTIFICATION_CERTIFICATE_ID must be 1..{CERTIFICATE_ID_MAX} characters"
            )
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise CertificateError("the notification certificate must have an RSA key")
        if not MIN_KEY_BITS <= public.key_size <= MAX_KEY_BITS:
            raise CertificateError(
                f"the notification key must be {MIN_KEY_BITS}-{MAX_KEY_BITS} bits, not {public.key_size}"
            )
        if public.public_numbers() != key.public_key().public_numbers():
            raise CertificateError("the private key does not belong to the notification certificate")
        self.certificate_id = certificate_id
        self.thumbprint = thumbprint_of(certificate)
        # Graph's encryptionCertificate: the base64 DER certificate, public key only.
        self.public_certificate = base64.b64encode(
            certificate.public_bytes(serialization.Encoding.DER)
        ).decode("ascii")
        self._key = key

    def __repr__(self) -> str:
        return f"NotificationCertificate(id={self.certificate_id!r}, thumbprint={self.thumbprint!r})"

    @classmethod
    def load(cls, material: str, certificate_id: str) -> NotificationCertificate:
        """From PEM (a certificate and an unencrypted private key, in any order), or from the
        base64 PKCS#12 without a password that a Key Vault certificate reference yields."""
        text = material.strip()
        if "-----BEGIN" in text:
            if "\n" not in text:  # an app setting pasted with literal \n escapes
                text = text.replace("\\n", "\n")
            data = text.encode()
            try:
                certificate = x509.load_pem_x509_certificate(data)
            except ValueError as exc:
                raise CertificateError("GRAPH_NOTIFICATION_CERTIFICATE has no PEM certificate") from exc
            try:
                key: Any = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError) as exc:
                raise CertificateError(
                    "GRAPH_NOTIFICATION_CERTIFICATE has no unencrypted PEM private key"
                ) from exc
        else:
            try:
                key, bundled, _ = pkcs12.load_key_and_certificates(base64.b64decode(text), None)
            except (ValueError, TypeError, binascii.Error) as exc:
                raise CertificateError(
                    "GRAPH_NOTIFICATION_CERTIFICATE is neither PEM nor base64 PKCS#12 without a password"
                ) from exc
            if bundled is None:
                raise CertificateError("the PKCS#12 bundle has no certificate")
            certificate = bundled
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CertificateError("the notification private key must be RSA")
        return cls(certificate_id, certificate, key)

    def decrypt(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """The resource inside one ``encryptedContent``; raises :class:`ForgedContent` on any failure.

        Order: certificate id and thumbprint, then the RSA-OAEP key, then the HMAC (constant
        time) and only after it matches the AES-CBC decryption.
        """
        certificate_id = _text(content, "encryptionCertificateId")
        if not hmac.compare_digest(certificate_id.encode(), self.certificate_id.encode()):
            raise ForgedContent("encryptionCertificateId does not match")
        thumbprint = _text(content, "encryptionCertificateThumbprint").upper()
        if not hmac.compare_digest(thumbprint.encode(), self.thumbprint.encode()):
            raise ForgedContent("encryptionCertificateThumbprint does not match")
        data = _b64(content, "data")
        signature = _b64(content, "dataSignature")
        try:
            key = self._key.decrypt(_b64(content, "dataKey"), oaep())
        except ValueError as exc:
            raise ForgedContent("dataKey does not decrypt with the notification key") from exc
        if len(key) not in _AES_KEY_SIZES:
            raise ForgedContent("dataKey is not an AES key")
        expected = hmac.new(key, data, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise ForgedContent("dataSignature does not match")
        if not data or len(data) % 16:
            raise ForgedContent("data is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = PKCS7(128).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
            resource = json.loads(plain)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ForgedContent("data does not decrypt to JSON") from exc
        if not isinstance(resource, dict):
            raise ForgedContent("data is not a JSON object")
        return resource


def _text(content: Mapping[str, Any], name: str) -> str:
    value = content.get(name)
    if not isinstance(value, str) or not value:
        raise ForgedContent(f"{name} is missing")
    return value


def _b64(content: Mapping[str, Any], name: str) -> bytes:
    value = _text(content, name)
    if len(value) > MAX_DATA_CHARS:
        raise ForgedContent(f"{name} is too long")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ForgedContent(f"{name} is not base64") from exc


# --- validationTokens ----------------------------------------------------------------------

# Microsoft Graph Change Tracking: the app that signs change notifications' validationTokens.
CHANGE_TRACKING_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
_TOKEN_ALGORITHMS = ["RS256"]


class ValidationTokenVerifier:
    """Checks a rich notification POST's ``validationTokens`` as Graph documents it.

    "Validating the authenticity of notifications"
    (learn.microsoft.com/graph/change-notifications-with-resource-data): each token must be
    unexpired, signed by the Microsoft identity platform (keys from its published JWKS),
    issued for this app (``aud`` = our app id), by our tenant (``iss`` / ``tid``), and to
    Graph's change-tracking app (``azp`` = ``CHANGE_TRACKING_APP_ID``). The endpoint serves
    this app and tenant only, so every token in the POST must pass, and there must be one.
    PyJWT does the JWT work; keys come from a JWKS URL (``PyJWKClient``, cached) or inline
    JWKS JSON (the emulator's test key set).
    """

    def __init__(self, signing_key: Any, app_id: str, tenant_id: str, *, leeway: int = 300) -> None:
        self._signing_key = signing_key  # token -> the key that signed it (raises jwt.PyJWTError)
        self._app_id = app_id
        self._tenant_id = tenant_id
        self._leeway = leeway

    @classmethod
    def from_settings(cls, settings: Any) -> ValidationTokenVerifier:
        import jwt

        source: str = settings.graph_notification_jwks
        if source.lstrip().startswith("{"):
            keys = jwt.PyJWKSet.from_json(source)

            def signing_key(token: str) -> Any:
                kid = jwt.get_unverified_header(token).get("kid")
                try:
                    return keys[str(kid)].key
                except KeyError as exc:
                    raise jwt.InvalidKeyError("unknown signing key") from exc

        else:
            client = jwt.PyJWKClient(source, cache_keys=True, lifespan=24 * 3600, timeout=5)

            def signing_key(token: str) -> Any:
                return client.get_signing_key_from_jwt(token).key

        return cls(signing_key, settings.graph_app_id, settings.graph_tenant_id)

    def __call__(self, tokens: list[str]) -> None:
        """Return when every token is valid; raise ``ValueError`` naming the failed check."""
        import jwt

        if not self._app_id or not self._tenant_id:
            raise ValueError("cannot be checked: GRAPH_TENANT_ID or the app id is not set")
        if not tokens:
            raise ValueError("missing")
        issuers = [
            f"https://sts.windows.net/{self._tenant_id}/",
            f"https://login.microsoftonline.com/{self._tenant_id}/v2.0",
        ]
        for token in tokens[:10]:  # one per app and tenant: a handful at most
            try:
                claims = jwt.decode(
                    token,
                    self._signing_key(token),
                    algorithms=_TOKEN_ALGORITHMS,
                    audience=self._app_id,
                    issuer=issuers,
                    leeway=self._leeway,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.ExpiredSignatureError as exc:
                raise ValueError("expired") from exc
            except jwt.InvalidAudienceError as exc:
                raise ValueError("wrong audience") from exc
            except jwt.InvalidIssuerError as exc:
                raise ValueError("wrong issuer") from exc
            except jwt.PyJWTError as exc:  # bad signature, unknown key, malformed, keys unreachable
                raise ValueError(f"invalid ({type(exc).__name__})") from exc
            if claims.get("tid", self._tenant_id) != self._tenant_id:
                raise ValueError("wrong tenant")
            if (claims.get("azp") or claims.get("appid")) != CHANGE_TRACKING_APP_ID:
                raise ValueError("not issued to Graph change tracking")
        if len(tokens) > 10:
            raise ValueError("too many")

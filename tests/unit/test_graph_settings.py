"""Graph's settings: the app registration and a managed identity are two settings, and expert ids
are Entra object ids."""

from __future__ import annotations

import pytest

from appointments.model import require_object_id
from appointments.settings import MICROSOFT_JWKS_URL, Settings, SettingsError

BASE = {"DEV_MODE": "true", "GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0"}


def test_a_managed_identity_is_named_by_azure_client_id() -> None:
    """AZURE_CLIENT_ID (azure-identity's name) is the identity; it is also the app Graph's tokens are for."""
    s = Settings.from_env({**BASE, "AZURE_CLIENT_ID": "mi-client-id"})
    assert (s.graph_client_id, s.azure_client_id, s.graph_app_id) == ("", "mi-client-id", "mi-client-id")


def test_the_app_registration_needs_its_secret() -> None:
    """GRAPH_CLIENT_ID alone used to be taken for a managed identity's id; now it is refused, saying why."""
    with pytest.raises(SettingsError, match="AZURE_CLIENT_ID"):
        Settings.from_env({**BASE, "GRAPH_CLIENT_ID": "app-id"})
    s = Settings.from_env(
        {**BASE, "GRAPH_CLIENT_ID": "app-id", "GRAPH_CLIENT_SECRET": "s", "AZURE_CLIENT_ID": "mi"}
    )
    assert s.graph_app_id == "app-id"


def test_validation_token_keys_default_to_microsofts_published_set() -> None:
    """Without GRAPH_NOTIFICATION_JWKS the identity platform's keys are used."""
    assert Settings.from_env(BASE).graph_notification_jwks == MICROSOFT_JWKS_URL
    assert Settings.from_env({**BASE, "GRAPH_NOTIFICATION_JWKS": '{"keys": []}'}).graph_notification_jwks == (
        '{"keys": []}'
    )


def test_the_managed_identity_credential_never_gets_the_app_registration_id() -> None:
    """The credential for Graph: a secret means the app registration; otherwise AZURE_CLIENT_ID's identity."""
    from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential

    from adapters.graph.client import _azure_credential

    secret = Settings.from_env(
        {
            **BASE,
            "GRAPH_TENANT_ID": "t",
            "GRAPH_CLIENT_ID": "app",
            "GRAPH_CLIENT_SECRET": "s",
            "AZURE_CLIENT_ID": "mi",
        }
    )
    assert isinstance(_azure_credential(secret), ClientSecretCredential)
    managed = _azure_credential(Settings.from_env({**BASE, "AZURE_CLIENT_ID": "mi"}))
    assert isinstance(managed, DefaultAzureCredential)


def test_rich_notifications_need_the_tenant_and_app_their_tokens_name() -> None:
    """Outside dev mode a certificate without GRAPH_TENANT_ID or an app id is a configuration error."""
    prod = {
        "CODE_PEPPER": "p" * 16,
        "PHONE_HMAC_KEY": "k" * 16,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    rich = {**prod, "GRAPH_NOTIFICATION_CERTIFICATE": "pem", "GRAPH_NOTIFICATION_CERTIFICATE_ID": "c"}
    with pytest.raises(SettingsError, match="validationTokens"):
        Settings.from_env(rich)
    assert Settings.from_env({**rich, "GRAPH_TENANT_ID": "t", "AZURE_CLIENT_ID": "mi"}).graph_app_id == "mi"


@pytest.mark.parametrize(
    "value",
    ["6f1c2a4e-0b7d-4c1e-9a51-3d2f8e7c1a01", "6F1C2A4E-0B7D-4C1E-9A51-3D2F8E7C1A01"],
)
def test_an_entra_object_id_is_an_expert_id(value: str) -> None:
    assert require_object_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "maija@pankki.example",
        "expert-1",
        "",
        "{6f1c2a4e-0b7d-4c1e-9a51-3d2f8e7c1a01}",
        "6f1c2a4e0b7d4c1e9a513d2f8e7c1a01",
    ],
)
def test_anything_else_is_refused_as_an_expert_id(value: str) -> None:
    """createOrGet keys on the organizer's object id: a UPN or a made-up id would split meetings."""
    with pytest.raises(ValueError, match="object id"):
        require_object_id(value)


def test_the_demo_directory_is_all_object_ids() -> None:
    """The seed refuses to write an expert whose id is not a GUID (checked before each write)."""
    from devhost.seed import DEMO_EXPERTS

    assert all(require_object_id(x.expert_id) for x in DEMO_EXPERTS)

"""One typed, frozen configuration object, read from an explicit mapping.

``Settings.from_env()`` reads ``os.environ`` by default; tests pass a dict.
Secrets are wrapped in :class:`Secret` so they never show up in ``repr`` or logs.
Every key is listed, with a placeholder, in ``local.settings.sample.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

# Microsoft identity platform's published signing keys (validationTokens are signed with them):
# https://learn.microsoft.com/en-us/graph/change-notifications-with-resource-data#validating-the-authenticity-of-notifications
MICROSOFT_JWKS_URL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"


class SettingsError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class Secret:
    """A secret value that is hidden from ``repr`` and ``str``."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


def _int(env: Mapping[str, str], key: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{key} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{key} must be true or false, got {raw!r}")


def _int_tuple(env: Mapping[str, str], key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        values = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    except ValueError as exc:
        raise SettingsError(f"{key} must be a comma-separated list of integers") from exc
    if not values or min(values) <= 0:
        raise SettingsError(f"{key} must list positive integers")
    return values


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in {"localhost", "::1"} or host.startswith("127.")


def _check_region(region: str) -> None:
    import phonenumbers  # imported here: reading settings must stay cheap for every other caller

    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"PHONE_DEFAULT_REGION must be a region code such as FI, got {region!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment."""

    # Storage: a connection string (Azurite, or an account key), or an endpoint for managed identity.
    storage_connection_string: Secret = Secret("UseDevelopmentStorage=true")
    tables_endpoint: str = ""
    task_hub_name: str = "AppointmentsHub"

    # Booking rules.
    join_window_minutes: int = 15
    slot_interval_minutes: int = 30
    allowed_durations: tuple[int, ...] = (30, 45, 60)
    min_lead_minutes: int = 120
    max_advance_days: int = 90
    change_notice_hours: int = 24
    buffer_minutes: int = 0
    hold_minutes: int = 10
    end_grace_minutes: int = 30

    # Identification code (ARCHITECTURE.md §7).
    code_digits: int = 6
    code_ttl_minutes: int = 10
    code_max_attempts: int = 3
    code_pepper: Secret = Secret("")
    phone_hmac_key: Secret = Secret("")
    max_consecutive_failures: int = 100

    # Identity (ARCHITECTURE.md §6).
    platform_auth_enabled: bool = False
    dev_mode: bool = False

    # Microsoft Graph (ARCHITECTURE.md §8).
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    graph_tenant_id: str = ""
    # The app registration (used with its secret). A managed identity is named by
    # AZURE_CLIENT_ID instead, as azure-identity's DefaultAzureCredential reads it.
    graph_client_id: str = ""
    graph_client_secret: Secret = Secret("")
    azure_client_id: str = ""
    # Where the signing keys of rich notifications' validationTokens are: a JWKS URL, or the
    # JWKS JSON itself (the emulator's test keys).
    graph_notification_jwks: str = MICROSOFT_JWKS_URL
    # How long one expert's getSchedule answer is reused (a slots page is then not a Graph storm).
    graph_schedule_cache_seconds: int = 60
    graph_sender_mailbox: str = ""
    graph_notification_url: str = ""
    graph_client_state: Secret = Secret("")
    # Rich call-event notifications: PEM certificate + private key (or base64 PKCS#12 from a
    # Key Vault certificate reference), and our id for it. Without them Graph's basic
    # notifications cannot say that a call ended.
    graph_notification_certificate: Secret = Secret("")
    graph_notification_certificate_id: str = ""

    portal_base_url: str = "http://localhost:7071"

    # What the customer is told to call, as Finns write it (issue 14).
    bank_service_phone: str = "09 123 4567"
    # The region whose domestic numbers (040 123 4567) the phone fields take (ISO 3166-1 alpha-2).
    phone_default_region: str = "FI"
    # How many proxies in front of the app append to X-Forwarded-For: App Service's front end is 1;
    # 0 when nothing trustworthy stands in front (then every caller counts as one source).
    trusted_forwarded_hops: int = 1

    # Fault injection for the crash tests (DEV_MODE only): the process exits right after a
    # trigger commits this lifecycle event (e.g. "CodeVerified"), before it raises it.
    crash_after_commit: str = ""

    # Retention (appointments/retention.py): what the bank's policy allows, set per deployment.
    durable_retention_days: int = 30
    personal_data_retention_days: int = 90
    audit_retention_years: int = 6

    @property
    def graph_app_id(self) -> str:
        """The id Graph knows this app by: the audience of its validationTokens."""
        return self.graph_client_id or self.azure_client_id

    @property
    def join_window(self) -> timedelta:
        return timedelta(minutes=self.join_window_minutes)

    @property
    def end_grace(self) -> timedelta:
        return timedelta(minutes=self.end_grace_minutes)

    @property
    def code_ttl(self) -> timedelta:
        return timedelta(minutes=self.code_ttl_minutes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (``os.environ`` when omitted) and validate them."""
        env = os.environ if env is None else env
        dev_mode = _bool(env, "DEV_MODE")
        platform_auth = _bool(env, "WEBSITE_AUTH_ENABLED")
        pepper = env.get("CODE_PEPPER", "")
        phone_key = env.get("PHONE_HMAC_KEY", "")
        if not dev_mode:
            # Outside dev mode an empty pepper or key would silently weaken the hashes.
            for key, value in (("CODE_PEPPER", pepper), ("PHONE_HMAC_KEY", phone_key)):
                if len(value) < 16:
                    raise SettingsError(f"{key} must be set (16+ characters) unless DEV_MODE is on")
        code_digits = _int(env, "CODE_DIGITS", 6, minimum=6)
        settings = cls(
            storage_connection_string=Secret(
                env.get("TABLES_CONNECTION_STRING")
                or env.get("AzureWebJobsStorage", "")
                or ("UseDevelopmentStorage=true" if dev_mode else "")
            ),
            tables_endpoint=env.get("TABLES_ENDPOINT", ""),
            task_hub_name=env.get("TASK_HUB_NAME", "AppointmentsHub") or "AppointmentsHub",
            join_window_minutes=_int(env, "JOIN_WINDOW_MINUTES", 15, minimum=1),
            slot_interval_minutes=_int(env, "SLOT_INTERVAL_MINUTES", 30, minimum=5),
            allowed_durations=_int_tuple(env, "ALLOWED_DURATIONS", (30, 45, 60)),
            min_lead_minutes=_int(env, "MIN_LEAD_MINUTES", 120),
            max_advance_days=_int(env, "MAX_ADVANCE_DAYS", 90, minimum=1),
            change_notice_hours=_int(env, "CHANGE_NOTICE_HOURS", 24),
            buffer_minutes=_int(env, "BUFFER_MINUTES", 0),
            hold_minutes=_int(env, "HOLD_MINUTES", 10, minimum=1),
            end_grace_minutes=_int(env, "END_GRACE_MINUTES", 30, minimum=1),
            code_digits=code_digits,
            code_ttl_minutes=_int(env, "CODE_TTL_MINUTES", 10, minimum=1),
            code_max_attempts=_int(env, "CODE_MAX_ATTEMPTS", 3, minimum=1),
            code_pepper=Secret(pepper or "dev-only-pepper"),
            phone_hmac_key=Secret(phone_key or "dev-only-phone-key"),
            max_consecutive_failures=_int(env, "MAX_CONSECUTIVE_FAILURES", 100, minimum=1),
            platform_auth_enabled=platform_auth,
            dev_mode=dev_mode,
            graph_base_url=(env.get("GRAPH_BASE_URL") or "https://graph.microsoft.com/v1.0").rstrip("/"),
            graph_tenant_id=env.get("GRAPH_TENANT_ID", ""),
            graph_client_id=env.get("GRAPH_CLIENT_ID", ""),
            graph_client_secret=Secret(env.get("GRAPH_CLIENT_SECRET", "")),
            azure_client_id=env.get("AZURE_CLIENT_ID", "").strip(),
            graph_notification_jwks=env.get("GRAPH_NOTIFICATION_JWKS", "").strip() or MICROSOFT_JWKS_URL,
            graph_schedule_cache_seconds=_int(env, "GRAPH_SCHEDULE_CACHE_SECONDS", 60),
            graph_sender_mailbox=env.get("GRAPH_SENDER_MAILBOX", ""),
            graph_notification_url=env.get("GRAPH_NOTIFICATION_URL", ""),
            graph_client_state=Secret(env.get("GRAPH_CLIENT_STATE", "")),
            graph_notification_certificate=Secret(env.get("GRAPH_NOTIFICATION_CERTIFICATE", "").strip()),
            graph_notification_certificate_id=env.get("GRAPH_NOTIFICATION_CERTIFICATE_ID", "").strip(),
            portal_base_url=(env.get("PORTAL_BASE_URL") or "http://localhost:7071").rstrip("/"),
            bank_service_phone=env.get("BANK_SERVICE_PHONE", "").strip() or "09 123 4567",
            phone_default_region=(env.get("PHONE_DEFAULT_REGION", "").strip() or "FI").upper(),
            trusted_forwarded_hops=_int(env, "TRUSTED_FORWARDED_HOPS", 1),
            crash_after_commit=env.get("DEV_CRASH_AFTER_COMMIT", "").strip(),
            durable_retention_days=_int(env, "DURABLE_RETENTION_DAYS", 30, minimum=1),
            personal_data_retention_days=_int(env, "PERSONAL_DATA_RETENTION_DAYS", 90, minimum=1),
            audit_retention_years=_int(env, "AUDIT_RETENTION_YEARS", 6, minimum=1),
        )
        _check_region(settings.phone_default_region)
        if len(settings.bank_service_phone) > 32 or not settings.bank_service_phone.isprintable():
            raise SettingsError("BANK_SERVICE_PHONE must be a phone number as customers should dial it")
        if settings.trusted_forwarded_hops > 8:
            raise SettingsError("TRUSTED_FORWARDED_HOPS must be between 0 and 8")
        if settings.crash_after_commit and not dev_mode:
            raise SettingsError("DEV_CRASH_AFTER_COMMIT is a test fault; it needs DEV_MODE")
        if settings.code_ttl_minutes > 10:
            raise SettingsError("CODE_TTL_MINUTES may be at most 10 (NIST SP 800-63B)")
        if bool(settings.graph_notification_certificate) != bool(settings.graph_notification_certificate_id):
            raise SettingsError(
                "set GRAPH_NOTIFICATION_CERTIFICATE and GRAPH_NOTIFICATION_CERTIFICATE_ID together"
            )
        if len(settings.graph_notification_certificate_id) > 128:
            raise SettingsError("GRAPH_NOTIFICATION_CERTIFICATE_ID may be at most 128 characters (Graph)")
        if (
            settings.graph_client_id
            and not settings.graph_client_secret
            and not _loopback(settings.graph_base_url)
        ):
            raise SettingsError(
                "GRAPH_CLIENT_ID is the app registration and needs GRAPH_CLIENT_SECRET; "
                "name a user-assigned managed identity with AZURE_CLIENT_ID instead"
            )
        if (
            settings.graph_notification_certificate
            and not dev_mode
            and not (settings.graph_tenant_id and settings.graph_app_id)
        ):
            # Rich notifications carry validationTokens, which name our tenant and app id.
            raise SettingsError(
                "rich notifications (GRAPH_NOTIFICATION_CERTIFICATE) need GRAPH_TENANT_ID and the app id "
                "(GRAPH_CLIENT_ID or AZURE_CLIENT_ID) to check their validationTokens"
            )
        if not settings.storage_connection_string and not settings.tables_endpoint:
            raise SettingsError("set AzureWebJobsStorage, TABLES_CONNECTION_STRING or TABLES_ENDPOINT")
        return settings

"""The deployment description against the code: every app setting in all three places, azd's files sound.

There is no Bicep compiler on PyPI, npm or Debian (the CLI ships only from GitHub and NuGet), so
each file is parsed with a Python implementation of Bicep's grammar (pycep-parser, Checkov's)
and checked for what a reader and azd rely on: settings, modules, roles, parameters. Types and
the registry modules' parameter names are not checked.
A setting may be missing from a place only when docs/DEPLOY.md's settings table says why.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
APP_CODE = ("appointments", "adapters", "activities", "http_triggers", "orchestrators", "timer_triggers")
APP_FILES = ("bootstrap.py", "function_app.py")
# env.get("X"), _int(env, "X", ...), os.environ["X"], os.environ.get("X"), os.getenv("X")
READ = re.compile(
    r"""(?:env\.get\(|env,\s*|environ\.get\(|environ\[|getenv\()\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""
)
HOST_REFERENCE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")  # host.json and bindings name settings so


def base(key: str) -> str:
    """``AzureWebJobsStorage__credential`` configures ``AzureWebJobsStorage``."""
    return key.split("__", 1)[0]


@cache
def code_settings() -> frozenset[str]:
    files = [p for d in APP_CODE for p in (ROOT / d).rglob("*.py")] + [ROOT / f for f in APP_FILES]
    found = {m for p in files for m in READ.findall(p.read_text(encoding="utf-8"))}
    found |= set(HOST_REFERENCE.findall((ROOT / "host.json").read_text(encoding="utf-8")))
    return frozenset(found)


@cache
def sample_settings() -> frozenset[str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    return frozenset(base(k) for k in values)


@cache
def infra_settings() -> frozenset[str]:
    text = (INFRA / "app" / "api.bicep").read_text(encoding="utf-8")
    block = text.split("// app settings: begin", 1)[1].split("// app settings: end", 1)[0]
    keys = set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*):", block, re.MULTILINE))
    # Settings added conditionally (the certificate, the auth providers' secrets).
    keys |= set(re.findall(r"\{\s*([A-Z][A-Z0-9_]+):", text))
    keys |= set(re.findall(r"^\s+(GRAPH_[A-Z_]+):", text, re.MULTILINE))
    return frozenset(base(k) for k in keys)


@cache
def documented_settings() -> dict[str, str]:
    """The settings table in docs/DEPLOY.md: name -> why it is not in every place."""
    text = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    section = text.split("## Settings outside the three places", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|([^\n]*)\|\s*$", section, re.MULTILINE)
    return {name: why.strip() for name, why in rows}


def test_every_setting_is_in_code_sample_and_infra_or_documented() -> None:
    """A setting read by the code, listed in the sample or set by the Bicep is in all three, or
    docs/DEPLOY.md says why not."""
    places = {
        "code": code_settings(),
        "local.settings.sample.json": sample_settings(),
        "infra/": infra_settings(),
    }
    documented = documented_settings()
    everything = set().union(*places.values())
    missing = [
        f"{key} is not in {where}"
        for key in sorted(everything)
        for where, keys in places.items()
        if key not in keys and key not in documented
    ]
    assert missing == []


def test_the_documented_exceptions_are_real_settings() -> None:
    """No stale rows: each documented exception is a setting some place still has, with a reason."""
    everything = code_settings() | sample_settings() | infra_settings()
    for name, why in documented_settings().items():
        assert name in everything, f"docs/DEPLOY.md documents {name}, which nothing uses any more"
        assert len(why) > 10, f"docs/DEPLOY.md gives no reason for {name}"


def infra_app_settings() -> dict[str, str]:
    """The Bicep's app settings as the app would see them: literals as written, Key Vault
    references as resolved secrets, other expressions as plausible values of their kind."""
    text = (INFRA / "app" / "api.bicep").read_text(encoding="utf-8")
    block = text.split("// app settings: begin", 1)[1].split("// app settings: end", 1)[0]
    block += text.split("var certificateSettings", 1)[1].split("\n}", 1)[0]  # the certificate too
    env: dict[str, str] = {}
    for key, value in re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*): (.+)$", block, re.MULTILINE):
        value = value.strip()
        if re.fullmatch(r"'[^']*'", value):
            env[key] = value[1:-1]
        elif value.startswith("keyVaultRef("):
            env[key] = "resolved-secret-" + "x" * 32
        elif value.startswith("string("):
            env[key] = "7"  # an int parameter
        elif value in ("identityClientId", "tenant().tenantId"):
            env[key] = "11111111-2222-3333-4444-555555555555"
        else:
            env[key] = "https://example.invalid/"  # endpoints, URLs, names
    return env


def test_the_apps_settings_accept_what_the_bicep_sets() -> None:
    """Settings.from_env takes the deployed settings as they are (a refusal would stop every function)."""
    from appointments.settings import Settings

    env = infra_app_settings()
    assert "GRAPH_NOTIFICATION_CERTIFICATE" in env and "TABLES_ENDPOINT" in env
    settings = Settings.from_env(env)
    assert not settings.dev_mode and settings.tables_endpoint and settings.graph_app_id


def test_the_secrets_are_key_vault_references() -> None:
    """The app's secrets never sit in the app settings as values."""
    text = (INFRA / "app" / "api.bicep").read_text(encoding="utf-8")
    for key in ("CODE_PEPPER", "PHONE_HMAC_KEY", "GRAPH_CLIENT_STATE", "GRAPH_NOTIFICATION_CERTIFICATE"):
        assert re.search(rf"^\s+{key}: keyVaultRef\(", text, re.MULTILINE), key


def test_azure_yaml_has_one_python_function_service() -> None:
    """azd deploys this folder as one Flex Consumption function app."""
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert list(doc["services"]) == ["api"]
    service = doc["services"]["api"]
    assert (service["host"], service["language"], service["project"]) == ("function", "python", ".")
    hook = doc["hooks"]["preprovision"]["posix"]["run"]
    assert (ROOT / hook).is_file()


@cache
def bicep_files() -> dict[str, str]:
    return {str(p.relative_to(INFRA)): p.read_text(encoding="utf-8") for p in INFRA.rglob("*.bicep")}


@pytest.mark.parametrize("name", sorted(bicep_files()))
def test_every_bicep_file_parses(name: str) -> None:
    """Bicep's grammar (pycep-parser) accepts each file; parameters, modules and resources are found."""
    from pycep import BicepParser

    parsed = BicepParser().parse(text=bicep_files()[name])
    assert parsed.get("parameters") or parsed.get("modules") or parsed.get("resources")


def test_the_infrastructure_has_what_the_app_needs() -> None:
    """Subscription scope, FC1 on Python 3.13, a user-assigned identity, identity-only storage with
    TLS 1.2, App Insights without local auth, Key Vault, and the three storage roles."""
    main = bicep_files()["main.bicep"]
    api = bicep_files()["app/api.bicep"]
    rbac = bicep_files()["app/rbac.bicep"]
    assert "targetScope = 'subscription'" in main
    assert re.search(r"name: 'FC1'\s+tier: 'FlexConsumption'", main)
    assert re.search(r"name: 'python'\s+version: '3.13'", api)
    assert "userAssignedResourceIds: [identityId]" in api and "systemAssigned: false" in api
    assert "allowSharedKeyAccess: false" in main and "minimumTlsVersion: 'TLS1_2'" in main
    assert "disableLocalAuth: true" in main
    assert "AzureWebJobsStorage__credential: 'managedidentity'" in api
    for role in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    ):
        assert role in rbac
    assert "'Key Vault Secrets User'" in main
    assert "keyVaultAccessIdentityResourceId: identityId" in api
    assert "name: 'authsettingsV2'" in api and "customOpenIdConnectProviders" in api


def test_modules_are_pinned_azure_verified_modules_or_local_files() -> None:
    """Every module is a versioned AVM reference or a file in infra/ that exists."""
    for name, text in bicep_files().items():
        for ref in re.findall(r"^module \w+ '([^']+)'", text, re.MULTILINE):
            if ref.startswith("br/public:"):
                assert re.fullmatch(r"br/public:avm/res/[a-z-]+/[a-z-]+:\d+\.\d+\.\d+", ref), (name, ref)
            else:
                assert (INFRA / Path(name).parent / ref).resolve().is_file(), (name, ref)


def test_parameters_file_names_only_parameters_main_declares() -> None:
    """azd maps main.parameters.json onto main.bicep's parameters; a typo would be silently ignored."""
    declared = set(re.findall(r"^param (\w+) ", bicep_files()["main.bicep"], re.MULTILINE))
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= declared
    required = {p for p in re.findall(r"^param (\w+) \w+$", bicep_files()["main.bicep"], re.MULTILINE)}
    assert required <= set(given), "a required parameter has no value in main.parameters.json"


def test_module_parameters_exist_in_local_modules() -> None:
    """Each parameter main.bicep passes to a local module is declared there."""
    main = bicep_files()["main.bicep"]
    for module, body in re.findall(
        r"^module \w+ '(\./[^']+)'[^{]*\{(.*?)^\}", main, re.MULTILINE | re.DOTALL
    ):
        params = body.split("params: {", 1)[1]
        passed = set(re.findall(r"^    (\w+):", params, re.MULTILINE))
        declared = set(re.findall(r"^param (\w+) ", bicep_files()[module.removeprefix("./")], re.MULTILINE))
        assert passed <= declared, (module, passed - declared)


def test_host_json_keeps_errors_and_names_its_hub_from_a_setting() -> None:
    """Sampling never drops requests, exceptions or traces; the hub is %TASK_HUB_NAME%; sessions off."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Exception", "Trace"} <= set(excluded)
    durable = host["extensions"]["durableTask"]
    assert durable["hubName"] == "%TASK_HUB_NAME%" and durable["extendedSessionsEnabled"] is False
    # Graph's 4 concurrent requests per mailbox are held by the adapter's call slots, per HTTP
    # attempt; the activity slots are more, so activities waiting out a Retry-After or a backoff
    # never hold every slot and stall the Table-only ones (measured: 300 lifecycles under 30%
    # Graph faults, 1.24/s with 4 slots against 2.29/s with 16 and 2.31/s with 32).
    from adapters.graph.client import MAX_CONCURRENT_CALLS

    assert MAX_CONCURRENT_CALLS < durable["maxConcurrentActivityFunctions"] <= 32
    assert 0 < durable["maxConcurrentOrchestratorFunctions"] <= 20  # CPU-bound replays, 2 vCPUs
    assert host["extensions"]["http"]["routePrefix"] == "api"


def test_app_settings_override_host_json_as_the_functions_host_does() -> None:
    """``AzureFunctionsJobHost__a__b`` replaces host.json's a.b, keys matched without regard to
    case; the devhost reads its Durable limits through it."""
    from devhost.host import HostSettings, with_app_setting_overrides

    data = {"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 16}}}
    over = with_app_setting_overrides(
        data,
        {
            "AzureFunctionsJobHost__Extensions__DurableTask__MaxConcurrentActivityFunctions": "3",
            "AzureFunctionsJobHost__extensions__http__routePrefix": "x",
            "UNRELATED": "1",
        },
    )
    assert over == {
        "extensions": {"durableTask": {"maxConcurrentActivityFunctions": "3"}, "http": {"routePrefix": "x"}}
    }
    assert data["extensions"]["durableTask"]["maxConcurrentActivityFunctions"] == 16  # not changed
    settings = HostSettings.from_host_json(ROOT / "host.json", {})
    durable = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["durableTask"]
    assert settings.max_activities == durable["maxConcurrentActivityFunctions"]
    assert settings.max_orchestrators == durable["maxConcurrentOrchestratorFunctions"]
    with pytest.raises(ValueError, match="maxConcurrentActivityFunctions"):
        HostSettings.from_host_json(
            ROOT / "host.json",
            {"AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": "many"},
        )


def test_the_app_takes_what_it_loaded_out_of_the_collectors_way() -> None:
    """``import function_app`` freezes the objects it loaded (gc.freeze): a full collection under
    load no longer walks the app's and its SDKs' tens of thousands of long-lived objects."""
    import os
    import subprocess
    import sys

    code = "import gc, function_app; print(gc.get_freeze_count())"
    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed snippet
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DEV_MODE": "true"},
    )
    assert int(out.stdout.strip().splitlines()[-1]) > 10_000

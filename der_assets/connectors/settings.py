"""Where each connector finds its base URL and credentials: the environment, else the twin.

By default every connector points at the fleet twin (`der simulate`), whose ready file
(der_assets.config.twin_ready_file(): DER_TWIN_READY_FILE, else $DER_HOME/twin_ready.json)
lists its loopback URLs and the credentials its servers accept. Setting a vendor's
environment variables points that vendor at the real API instead; each value is looked up
on its own, so a deployment may override only some of them. Nothing is cached: a new twin
run (new ports) is picked up by the next call.

Environment variables (all optional while a twin is running):

  DER_TWIN_READY_FILE                  the twin's ready file (see der_assets.config)
  DER_SOLAREDGE_BASE_URL               e.g. https://monitoringapi.solaredge.com
  DER_SOLAREDGE_API_KEY                the account's api_key (query parameter)
  DER_SOLAREDGE_DAILY_LIMIT            requests per site per UTC day (default 300)
  DER_ENPHASE_BASE_URL                 e.g. https://api.enphaseenergy.com  (paths add /api/v4/...)
  DER_ENPHASE_API_KEY                  the application's key= parameter
  DER_ENPHASE_ACCESS_TOKEN             the OAuth2 access token (Bearer)
  DER_ENPHASE_PLAN                     Watt | Kilowatt | Megawatt | Partner (default Kilowatt)
  DER_ENPHASE_REQUESTS_PER_MINUTE      overrides the plan's per-minute limit
  DER_ENPHASE_GATEWAY_BASE_URL         per-site URL template, e.g. https://envoy-{site_id}.lan
  DER_ENPHASE_GATEWAY_TOKEN            the gateway JWT (firmware >= 7), Bearer
  DER_SMA_BASE_URL                     e.g. https://monitoring.smaapis.de
  DER_SMA_ACCESS_TOKEN                 OAuth2 access token from auth.smaapis.de (Bearer)
  DER_SONNEN_BASE_URL                  per-site URL template, e.g. http://sonnen-{site_id}.lan
  DER_SONNEN_AUTH_TOKEN                the Auth-Token from the battery's web UI
  DER_FRONIUS_BASE_URL                 per-site URL template, e.g. http://fronius-{site_id}.lan
  DER_FRONIUS_ARCHIVE_GAP_S            seconds between archive calls per device (default 120)
  DER_FRONIUS_REALTIME_GAP_S           seconds between realtime calls per device (default 4)
  DER_SUNSPEC_DEVICES                  JSON list of {"site_id","device_id","source","host","port","unit_id"}
  DER_AMI_INBOX                        directory the utility's Green Button files arrive in
  DER_AMI_CONNECT_EDCS                 utilities (registry `edc`, comma-separated, or `all`) whose meters
                                       come over Green Button Connect instead of the inbox (default none)
  DER_GBC_BASE_URL                     the data custodian, e.g. https://api.utility.com/DataCustodian
                                       (resources under /espi/1_1/resource, OAuth under /oauth)
  DER_GBC_CLIENT_ID, DER_GBC_CLIENT_SECRET  the third-party registration's OAuth client
  DER_GBC_REFRESH_TOKEN                an authorization's refresh token, used until the token store has one
  DER_GBC_REQUESTS_PER_MINUTE          request budget (default 60: PG&E Share My Data allows 1 a second)

Device-local APIs (Enphase gateway, sonnen, Fronius) have one address per site, so their
base URL is a template with `{site_id}`; the twin serves them all on one port under
/sites/{site_id} (its ready file's device_base_path).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from der_assets import config

VENDORS = ("solaredge", "enphase", "enphase_gateway", "sma", "sonnen", "fronius")
DEVICE_LOCAL = ("enphase_gateway", "sonnen", "fronius")

#: vendor -> (base URL env, {credential name: env})
ENV = {
    "solaredge": ("DER_SOLAREDGE_BASE_URL", {"api_key": "DER_SOLAREDGE_API_KEY"}),
    "enphase": ("DER_ENPHASE_BASE_URL", {"api_key": "DER_ENPHASE_API_KEY",
                                         "access_token": "DER_ENPHASE_ACCESS_TOKEN"}),
    "enphase_gateway": ("DER_ENPHASE_GATEWAY_BASE_URL", {"token": "DER_ENPHASE_GATEWAY_TOKEN"}),
    "sma": ("DER_SMA_BASE_URL", {"access_token": "DER_SMA_ACCESS_TOKEN"}),
    "sonnen": ("DER_SONNEN_BASE_URL", {"auth_token": "DER_SONNEN_AUTH_TOKEN"}),
    "fronius": ("DER_FRONIUS_BASE_URL", {}),
    "greenbutton_connect": ("DER_GBC_BASE_URL", {"client_id": "DER_GBC_CLIENT_ID",
                                                 "client_secret": "DER_GBC_CLIENT_SECRET",
                                                 "refresh_token": "DER_GBC_REFRESH_TOKEN"}),
}
#: credential name -> key in the twin ready file's "credentials"
TWIN_CREDENTIALS = {
    ("solaredge", "api_key"): "solaredge_api_key",
    ("enphase", "api_key"): "enphase_api_key",
    ("enphase", "access_token"): "enphase_access_token",
    ("enphase_gateway", "token"): "enphase_gateway_token",
    ("sma", "access_token"): "sma_access_token",
    ("sonnen", "auth_token"): "sonnen_auth_token",
    ("greenbutton_connect", "client_id"): "greenbutton_connect_client_id",
    ("greenbutton_connect", "client_secret"): "greenbutton_connect_client_secret",
    ("greenbutton_connect", "refresh_token"): "greenbutton_connect_refresh_token",
}
#: tuning knobs: env -> default
TUNING = {
    "DER_SOLAREDGE_DAILY_LIMIT": 300,
    "DER_ENPHASE_PLAN": "Kilowatt",
    "DER_ENPHASE_REQUESTS_PER_MINUTE": None,
    "DER_FRONIUS_ARCHIVE_GAP_S": 120.0,
    "DER_FRONIUS_REALTIME_GAP_S": 4.0,
    "DER_GBC_REQUESTS_PER_MINUTE": 60,
}
SUNSPEC_ENV = "DER_SUNSPEC_DEVICES"
AMI_INBOX_ENV = "DER_AMI_INBOX"
AMI_CONNECT_ENV = "DER_AMI_CONNECT_EDCS"


class SettingsError(LookupError):
    """A connector setting is in neither the environment nor a twin ready file."""


@dataclass(frozen=True)
class VendorSettings:
    """Base URL (a template with {site_id} for device-local APIs), credentials, and where they came from."""

    vendor: str
    base_url: str
    credentials: dict = field(default_factory=dict)
    origin: str = "env"  # "env", "twin" or "env+twin"

    def url_for(self, site_id: str) -> str:
        """The base URL of one site's device (device-local APIs); the base URL itself otherwise."""
        return self.base_url.replace("{site_id}", str(site_id)) if "{site_id}" in self.base_url else self.base_url

    def need(self, name: str) -> str:
        value = self.credentials.get(name)
        if not value:
            env = ENV[self.vendor][1].get(name, "?")
            raise SettingsError(f"{self.vendor}: credential {name!r} not set (env {env}, or a twin ready file)")
        return value


def read_ready_file(path: Optional[Path] = None) -> Optional[dict]:
    """The twin's ready file as a dict, or None when no twin has written one."""
    path = Path(path) if path is not None else config.twin_ready_file()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"twin ready file {path} is unreadable: {exc}") from None


def vendor_settings(vendor: str, *, env: Optional[dict] = None, ready: Optional[dict] = None) -> VendorSettings:
    """Settings for one vendor: each value from its env variable, else from the twin's ready file."""
    if vendor not in ENV:
        raise SettingsError(f"unknown vendor {vendor!r}; known: {', '.join(VENDORS)}")
    env = os.environ if env is None else env
    url_env, cred_envs = ENV[vendor]
    origins = set()
    twin = None

    def twin_file() -> dict:
        nonlocal twin
        if twin is None:
            twin = ready if ready is not None else (read_ready_file() or {})
        return twin

    base = env.get(url_env)
    if base:
        origins.add("env")
    else:
        base = (twin_file().get("http") or {}).get(vendor)
        if not base:
            raise SettingsError(f"{vendor}: no base URL: set {url_env} or start the twin (ready file "
                                f"{config.twin_ready_file()})")
        origins.add("twin")
        if vendor in DEVICE_LOCAL:
            base = base.rstrip("/") + twin_file().get("device_base_path", "/sites/{site_id}")
    creds = {}
    for name, var in cred_envs.items():
        value = env.get(var)
        if value:
            origins.add("env")
        else:
            value = (twin_file().get("credentials") or {}).get(TWIN_CREDENTIALS[(vendor, name)])
            if value:
                origins.add("twin")
        if value:
            creds[name] = value
    return VendorSettings(vendor, base, creds, "+".join(sorted(origins)))


def tuning(name: str, *, env: Optional[dict] = None):
    """A rate-limit knob from TUNING: strings as given, numbers as int/float, unset -> default."""
    env = os.environ if env is None else env
    default = TUNING[name]
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if isinstance(default, str):
        return raw
    return float(raw) if isinstance(default, float) else int(raw)


def sunspec_devices(*, env: Optional[dict] = None, ready: Optional[dict] = None) -> list[dict]:
    """The SunSpec Modbus devices: DER_SUNSPEC_DEVICES (JSON list), else the twin's list."""
    env = os.environ if env is None else env
    raw = env.get(SUNSPEC_ENV)
    if raw:
        try:
            devices = json.loads(raw)
        except ValueError as exc:
            raise SettingsError(f"{SUNSPEC_ENV} is not a JSON list: {exc}") from None
    else:
        devices = ((ready if ready is not None else read_ready_file()) or {}).get("sunspec")
        if devices is None:
            raise SettingsError(f"no SunSpec devices: set {SUNSPEC_ENV} or start the twin")
    need = {"site_id", "host", "port"}
    for d in devices:
        if not need <= set(d):
            raise SettingsError(f"SunSpec device {d!r} lacks {sorted(need - set(d))}")
    return devices


def ami_inbox(*, env: Optional[dict] = None, ready: Optional[dict] = None) -> Path:
    """The Green Button inbox: DER_AMI_INBOX, else the twin's ami_inbox."""
    env = os.environ if env is None else env
    if env.get(AMI_INBOX_ENV):
        return Path(env[AMI_INBOX_ENV])
    inbox = ((ready if ready is not None else read_ready_file()) or {}).get("ami_inbox")
    if not inbox:
        raise SettingsError(f"no AMI inbox: set {AMI_INBOX_ENV} or start the twin")
    return Path(inbox)


def ami_connect_edcs(*, env: Optional[dict] = None) -> Optional[frozenset]:
    """The utilities whose meters come over Green Button Connect: DER_AMI_CONNECT_EDCS, upper-cased;
    None when unset (every meter's data comes through the inbox), frozenset({"*"}) for `all`."""
    env = os.environ if env is None else env
    raw = (env.get(AMI_CONNECT_ENV) or "").strip()
    if not raw:
        return None
    names = frozenset(n.strip().upper() for n in raw.split(",") if n.strip())
    return frozenset({"*"}) if "ALL" in names or "*" in names else names

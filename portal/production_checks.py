"""What production refuses: settings that are fine for development but unsafe in production.

Each check returns one line per problem and names the setting to change, never a secret value,
so an operator fixes them all in one round (``portal.config`` raises them together).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask.helpers import get_debug_flag

from portal.entra import clouds
from portal.storage import vault


def production_problems(app) -> list[str]:
    """Every setting that is fine for development but unsafe in production (empty when safe)."""
    config = app.config
    return [
        *_demo_problems(config),
        *_debug_problems(config),
        *_public_url_problems(config),
        *_cloud_problems(config),
        *_metrics_problems(config),
    ]


def _demo_problems(config) -> list[str]:
    if config.get("DEMO"):
        return [
            "PORTAL_DEMO must be off in production (demo mode offers the Entra simulator "
            "and shows demo hints)"
        ]
    return []


def _debug_problems(config) -> list[str]:
    # The Werkzeug debugger runs Python sent from the browser, and debug mode shows tracebacks.
    if config.get("DEBUG") or get_debug_flag():
        return [
            "DEBUG / FLASK_DEBUG must be off in production (debug mode shows tracebacks and "
            "can run code sent from the browser)"
        ]
    return []


def _public_url_problems(config) -> list[str]:
    url = str(config.get("PUBLIC_URL") or "")
    if not url:
        return ["PORTAL_PUBLIC_URL must be set in production (the portal's https:// address)"]
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme != "https" or not host:
        from portal.config import DEFAULTS  # config imports this module

        unset = " — the development default: it is not set" if url == DEFAULTS["PUBLIC_URL"] else ""
        return [f"PORTAL_PUBLIC_URL must be https:// in production (got {url!r}{unset})"]
    if is_loopback_host(host):
        return [
            f"PORTAL_PUBLIC_URL must be the portal's public address, not a loopback host "
            f"(got {url!r})"
        ]
    return []


#: The metrics token guards an endpoint reachable from the internet: as long as a session key.
METRICS_TOKEN_MIN_LENGTH = 32


def _metrics_problems(config) -> list[str]:
    token = config.get("METRICS_TOKEN")
    if token and len(token) < METRICS_TOKEN_MIN_LENGTH:
        return [
            f"PORTAL_METRICS_TOKEN is too short for production (at least "
            f"{METRICS_TOKEN_MIN_LENGTH} characters, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        ]
    return []


def _cloud_problems(config) -> list[str]:
    path = config.get("CLOUDS_FILE")
    if not path:
        return []
    try:
        table = clouds.load_cloud_table(path)
    except clouds.CloudConfigError as exc:
        return [f"PORTAL_CLOUDS_FILE: {exc}"]
    problems = []
    for cloud in table.all():
        signs = simulator_signs(cloud)
        if signs:
            problems.append(
                f"PORTAL_CLOUDS_FILE: cloud {cloud.key!r} is a simulator or local "
                f"cloud ({'; '.join(signs)}): production talks only to real "
                "Microsoft clouds"
            )
    return problems


def simulator_signs(cloud: clouds.Cloud) -> list[str]:
    """Why a cloud looks like the Entra simulator (or another local stand-in); empty if not.

    The simulator marks its entries, listens on loopback and brings its own CA; a real national
    cloud has none of these (its certificates chain to the public CAs), so each one alone is
    enough to refuse it.
    """
    signs = []
    if cloud.simulator:
        signs.append("marked as the simulator")
    for name in ("login_base", "graph_base", "portal_url", "entra_url"):
        host = urlsplit(getattr(cloud, name)).hostname or ""
        if is_loopback_host(host):
            signs.append(f"{name} is on the loopback host {host}")
    if cloud.ca_bundle:
        signs.append("it brings its own CA bundle")
    return signs


def is_loopback_host(host: str) -> bool:
    """localhost (and its subdomains), 127.0.0.0/8, ::1, IPv4-mapped loopback, or unspecified."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or address.is_unspecified or bool(mapped and mapped.is_loopback)


def weak_key_problems(keyring: vault.Keyring, where: str) -> list[str]:
    """Vault keys that cannot be random: every byte the same, too few byte values, or a key
    listed twice under two ids. A random 32-byte key has about 30 distinct byte values; 16 or
    fewer happens by chance with a probability below 1e-15."""
    problems = []
    seen: dict[bytes, str] = {}
    for kid in keyring.key_ids:
        key = keyring.key(kid)
        distinct = len(set(key))
        if distinct == 1:
            problems.append(
                f"{where}: vault key {kid!r} is weak: every byte is the same (such as "
                "all zero); generate keys with the vault commands"
            )
        elif distinct <= 16:
            problems.append(
                f"{where}: vault key {kid!r} is weak: too few different byte values "
                "for a random key; generate keys with the vault commands"
            )
        if key in seen:
            problems.append(
                f"{where}: vault keys {seen[key]!r} and {kid!r} are the same key; "
                "each key must be generated on its own"
            )
        seen.setdefault(key, kid)
    return problems

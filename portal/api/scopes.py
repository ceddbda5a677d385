"""What an API key may do: the one list of scopes. A later feature adds its scope here (and
names it in its routes' ``requires(...)``); a key holds the scopes it was created with."""

from __future__ import annotations

#: Scope -> what it allows (shown by ``flask api-key create --help`` and in the OpenAPI
#: document's security scheme).
SCOPES: dict[str, str] = {
    "connections:read": "Read organizations and their connections.",
    "connections:write": "Create and rename organizations; delete connections.",
    "sessions:write": "Start connect sessions for an organization's users.",
    "setup_links:write": "Make and revoke setup links for an organization's IT admins.",
}


def unknown(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The names in ``scopes`` that are not scopes."""
    return [scope for scope in scopes if scope not in SCOPES]

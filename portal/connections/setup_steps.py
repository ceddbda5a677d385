"""The customer-owned setup's six steps: their names and titles (the wizard's sections, its
progress bar and the connection page's "Continue setup" link read them from here)."""

from __future__ import annotations

from portal.storage import Connection

#: The wizard's sections, in order: (name, title). A section's id is ``step-<name>``.
STEPS: tuple[tuple[str, str], ...] = (
    ("cloud", "National cloud"),
    ("ids", "Tenant ID and client ID"),
    ("register", "Register the application"),
    ("certificate", "Certificate"),
    ("permissions", "Permissions"),
    ("link", "Link Account"),
)
NAMES = tuple(name for name, _ in STEPS)


def current(connection: Connection) -> int:
    """The step the customer has reached (1-based, within the six)."""
    return max(1, min(connection.wizard_step or 1, len(STEPS)))


def current_name(connection: Connection) -> str:
    return NAMES[current(connection) - 1]


def advance(connection: Connection, step: int) -> int:
    """The furthest step reached once ``step`` is done: never back."""
    return max(connection.wizard_step or 1, step)

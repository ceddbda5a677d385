"""Sign-in attempts, counted in SQLite so every worker process sees them."""

from __future__ import annotations

import time

from portal.storage.db import write_transaction
from portal.storage.sql import _execute, _row, _rows
from portal.storage.users import normalize_email


def record_login_attempt(
    account: str, address: str, succeeded: bool, now: float | None = None
) -> None:
    now = time.time() if now is None else now
    with write_transaction():
        _execute(
            "INSERT INTO login_attempts (account, address, at, succeeded) VALUES (?, ?, ?, ?)",
            [normalize_email(account), address, now, int(succeeded)],
        )
        _execute("DELETE FROM login_attempts WHERE at < ?", [now - 86400])


#: Failures of one account from one address are remembered this long (the table's horizon).
PAIR_MEMORY_SECONDS = 86400


def recent_failures(
    *,
    account: str | None = None,
    address: str | None = None,
    window: float,
    now: float | None = None,
) -> list[float]:
    """Times of failed attempts in the window, oldest first: of an account, of an address, or
    of one account from one address (both given). Counting for an account stops at its last
    success (from that address, for a pair)."""
    now = time.time() if now is None else now
    if account is None and address is None:
        raise ValueError("account or address")
    where, params = [], []
    if account is not None:
        where.append("account = ?")
        params.append(normalize_email(account))
    if address is not None:
        where.append("address = ?")
        params.append(address)
    since = now - window
    if account is not None:
        last_ok = _row(
            f"SELECT MAX(at) AS at FROM login_attempts WHERE {' AND '.join(where)} "
            "AND succeeded = 1",
            params,
        )
        if last_ok and last_ok["at"] is not None:
            since = max(since, last_ok["at"])
    rows = _rows(
        f"SELECT at FROM login_attempts WHERE {' AND '.join(where)} AND succeeded = 0 "
        "AND at > ? ORDER BY at",
        [*params, since],
    )
    return [r["at"] for r in rows]


def pair_delay_seconds(
    failures: int, *, free_failures: int, first_delay: float, max_delay: float
) -> float:
    """The pause owed after ``failures`` failures of one account from one address: none for
    the first ``free_failures``, then ``first_delay`` doubling with each further one, capped."""
    if failures < free_failures:
        return 0.0
    return min(first_delay * 2 ** min(failures - free_failures, 32), max_delay)


def login_lockout_seconds(
    account: str,
    address: str,
    *,
    free_failures: int,
    first_delay: float,
    max_delay: float,
    max_per_address: int,
    window: float,
    now: float | None = None,
) -> float:
    """Seconds until a sign-in may be tried again for this account from this address (0: now).

    Failures slow down only the (account, address) pair they came from, so a stranger who knows
    an email address cannot keep its owner out from elsewhere (ASVS V6.1); an address that
    fails too often in the window, whatever the accounts, is stopped altogether.
    """
    now = time.time() if now is None else now
    pair = recent_failures(account=account, address=address, window=PAIR_MEMORY_SECONDS, now=now)
    wait = 0.0
    if pair:
        delay = pair_delay_seconds(
            len(pair), free_failures=free_failures, first_delay=first_delay, max_delay=max_delay
        )
        wait = pair[-1] + delay - now
    from_address = recent_failures(address=address, window=window, now=now)
    if len(from_address) >= max_per_address:
        # Allowed again when fewer than the limit remain inside the window.
        wait = max(wait, from_address[len(from_address) - max_per_address] + window - now)
    return max(wait, 0.0)

"""Time of one /metrics scrape with many connections and job runs in the database.

The connection and job gauges are computed from the database at every scrape (one GROUP BY for
connections, one query for the jobs); this prints the median scrape time and the body size.

    .venv/bin/python bench/metrics.py [--connections 10000] [--runs 20]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal import create_app, storage  # noqa: E402
from portal.storage import vault  # noqa: E402

STATES = ("draft", "waiting", "connected", "needs_attention", "needs_reconnect")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": tmp,
                "SECRET_KEY": secrets.token_hex(32),
                "VAULT_KEYS": vault.Keyring.generate(),
                "METRICS_TOKEN": token,
            }
        )
        with app.app_context():
            org = storage.create_organization("Bench")
            database = storage.get_db()
            with storage.write_transaction():
                for n in range(args.connections):
                    made = storage.create_connection(
                        org.id, ("customer_owned", "service_provider")[n % 2]
                    )
                    database.execute(
                        "UPDATE connections SET state = ?, health = 'healthy' WHERE id = ?",
                        [STATES[n % len(STATES)], made.id],
                    )
            for job in ("check-health", "refresh-tokens"):
                for _ in range(100):
                    run = storage.start_job_run(job, total=args.connections)
                    storage.finish_job_run(run, ok=True, processed=args.connections)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        times, size = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get("/metrics", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            size = len(response.get_data())
    print(f"connections = {args.connections}")
    print(f"body_bytes = {size}")
    print(f"scrape_ms_median = {statistics.median(times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

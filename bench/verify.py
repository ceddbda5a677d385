"""Wall time of one customer-owned verification against the simulator with 50 ms per round trip.

Prints wall time ÷ (round trips × latency): 1.0 means "as slow as doing every call one after the
other"; below 1 the concurrent Graph reads pay off. Then a second check with the tenant discovery
cached (as the portal's app keeps it): its round trips, and its token requests counted from the
simulator's request log (one per resource: every check asks for new app tokens).

    .venv/bin/python bench/verify.py [--latency-ms 50] [--runs 5] [--exchange]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from entrasim.app import Sim  # noqa: E402
from entrasim.server import SimServer  # noqa: E402
from entrasim.testing import SimAdmin  # noqa: E402
from portal.entra.certificates import issue_certificate  # noqa: E402
from portal.entra.client import CertificateCredential  # noqa: E402
from portal.entra.clouds import load_cloud_table  # noqa: E402
from portal.entra.tenant import DiscoveryCache  # noqa: E402
from portal.entra.verify import verify_customer_owned  # noqa: E402

GRAPH = (
    "User.ReadWrite.All",
    "Group.ReadWrite.All",
    "Directory.ReadWrite.All",
    "User.EnableDisableAccount.All",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exchange", action="store_true", help="also check Exchange Online")
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    workdir = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    server = SimServer(sim=Sim(base_latency_ms=args.latency_ms), cert_dir=workdir).start()
    admin = SimAdmin(server.base_url("global"), server.ca_path, server)
    try:
        table = load_cloud_table(server.clouds_file(workdir / "clouds.json"))
        cert = issue_certificate("Bench Portal", "bench-1")  # 3072-bit, as in production
        credential = CertificateCredential(cert.private_key_pem, cert.cert_pem)
        tenant = admin.create_tenant(
            cloud="global", domains=["contoso.onmicrosoft.com"], display_name="Contoso"
        )
        app = admin.create_app(tenant["id"], display_name="HR sync")
        admin.upload_certificate(tenant["id"], app["app_id"], cert.cert_pem)
        for permission in GRAPH:
            admin.grant_app_role(tenant["id"], app["app_id"], permission)
        admin.assign_directory_role(
            tenant["id"], app["app_id"], "fe930be7-5e62-47db-91af-98c3a49a38b1"
        )
        if args.exchange:
            admin.grant_app_role(
                tenant["id"], app["app_id"], "Exchange.ManageAsApp", resource="exchange"
            )
            admin.assign_directory_role(
                tenant["id"], app["app_id"], "29232cdf-9323-42fd-ade2-1d097af3e4de"
            )

        def run(discovery: DiscoveryCache):
            before = len(admin.requests())
            began = time.perf_counter()
            report = verify_customer_owned(
                table,
                "sim-global",
                "contoso.onmicrosoft.com",
                app["app_id"],
                credential,
                args.exchange,
                discovery_cache=discovery,
            )
            wall = time.perf_counter() - began
            log = admin.requests()[before:]
            assert report.ok, report.problem
            return report, wall, log

        ratios, walls, trips = [], [], []
        for _ in range(args.runs):
            discovery = DiscoveryCache()  # a first check: nothing cached anywhere
            report, wall, log = run(discovery)
            ratios.append(wall / (len(log) * latency))
            walls.append(wall)
            trips.append(len(log))
        print(f"latency per round trip: {args.latency_ms} ms; exchange: {args.exchange}")
        print(
            f"first check: round trips {trips[-1]} "
            f"({', '.join(entry['endpoint'] for entry in log)})"
        )
        print(
            f"first check: wall {statistics.median(walls) * 1000:.0f} ms (median of "
            f"{args.runs}); serial would be ≥ {trips[-1] * args.latency_ms} ms"
        )
        print(
            f"first check: wall / (round trips × latency) = {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; aim ≤ 1.1)"
        )
        for step in report.steps:
            print(f"    {step.name:<22} {step.ms:7.1f} ms  {step.outcome}")

        second, wall2, log2 = run(discovery)  # the portal keeps one per app
        token_requests = sum(1 for entry in log2 if entry["endpoint"] == "token")
        expected = 2 if args.exchange else 1  # Graph, and Exchange Online when checked
        print(
            f"second check, tenant discovery cached: wall {wall2 * 1000:.0f} ms, "
            f"round trips {len(log2)} ({', '.join(e['endpoint'] for e in log2)}), "
            f"token requests {token_requests} (expected {expected})"
        )
        for step in second.steps:
            print(f"    {step.name:<22} {step.ms:7.1f} ms  {step.outcome}")
        return 0 if token_requests == expected else 1
    finally:
        admin.close()
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())

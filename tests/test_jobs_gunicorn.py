"""The measurement: under gunicorn with the repository's gunicorn.conf.py, two Link Accounts
that hang at Microsoft do not slow an unrelated request. (With 2 sync workers a validation
fragment took 8 s while two checks waited on Microsoft; a hung check outlived the 30 s worker
timeout.) The bound is loose on purpose: the suite shares two cores with other runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from portal import create_app, storage
from portal.connections import certificates
from tests.conftest import FAST_HASH, TEST_PASSWORD
from tests.seeding import set_columns

ROOT = Path(__file__).resolve().parents[1]
#: An answer "at once": far below the 8 s hang, loose for a loaded machine.
BOUND_SECONDS = 1.5
GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def portal_env(tmp_path, sim_server, monkeypatch):
    """The environment gunicorn's workers build their app from (no test mapping: the real
    configuration path), with the simulator's clouds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update(
        PORTAL_INSTANCE_PATH=str(tmp_path / "instance"),
        PORTAL_CLOUDS_FILE=sim_server.clouds_file(str(tmp_path / "sim-clouds.json")),
        PORTAL_CERT_KEY_SIZE="2048",
        PORTAL_BIND=f"127.0.0.1:{_free_port()}",
    )
    for key, value in env.items():
        if key.startswith("PORTAL_"):
            monkeypatch.setenv(key, value)
    return env


def _seed(sim, count: int) -> tuple[str, list[str]]:
    """An admin and ``count`` customer-owned connections ready to link (certificates issued
    here, uploaded to the simulator); returns the admin's email and the connection ids."""
    tenant = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    app = create_app()  # the same instance folder, keys and database as gunicorn's workers
    ids = []
    with app.app_context():
        org = storage.create_organization("Contoso")
        storage.create_user(
            "admin@contoso.example",
            "admin",
            generate_password_hash(TEST_PASSWORD, FAST_HASH),
            org.id,
        )
        for n in range(count):
            registered = sim.create_app(tenant["id"], display_name=f"HR sync {n}")
            item = storage.create_connection(org.id, "customer_owned", f"Connection {n}")
            item = set_columns(
                item.id,
                cloud="sim-global",
                tenant_input="contoso.onmicrosoft.com",
                tenant_id=tenant["id"],
                client_id=registered["app_id"],
            )
            cert = certificates.issue(item, actor=None)
            sim.upload_certificate(tenant["id"], registered["app_id"], cert.cert_pem)
            ids.append(item.id)
    return "admin@contoso.example", ids


def _serve(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _signed_in(base: str, email: str, process) -> tuple[requests.Session, str]:
    session = requests.Session()
    session.trust_env = False
    deadline = time.monotonic() + 30
    while True:
        try:
            page = session.get(f"{base}/login", timeout=10)
            break
        except (requests.ConnectionError, requests.Timeout):
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {process.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.1)
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    session.headers["Origin"] = base
    answer = session.post(
        f"{base}/login",
        data={"email": email, "password": TEST_PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    home = session.get(f"{base}/", timeout=10)  # the signed-in session's own CSRF token
    return session, re.search(r'"X-CSRFToken": "([^"]+)"', home.text).group(1)


def _timed(call):
    began = time.perf_counter()
    response = call()
    return response, time.perf_counter() - began


def test_two_hanging_link_accounts_leave_a_validation_fragment_fast(portal_env, sim):
    email, ids = _seed(sim, 2)
    process = _serve(portal_env)
    base = "http://" + portal_env["PORTAL_BIND"]
    try:
        session, token = _signed_in(base, email, process)
        hx = {"HX-Request": "true"}
        session.get(f"{base}/connections/validate/client", params={"client_id": GUID}, timeout=10)
        sim.set_fault("token", "hang", seconds=8)
        starts = []
        for connection_id in ids:
            response, took = _timed(
                lambda cid=connection_id: session.post(
                    f"{base}/connections/{cid}/check",
                    data={"csrf_token": token, "where": "page"},
                    headers=hx,
                    timeout=30,
                )
            )
            assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.text
            starts.append(took)
        time.sleep(0.5)  # both jobs are now waiting on the hanging token endpoint
        fragments = []
        for _ in range(5):
            response, took = _timed(
                lambda: session.get(
                    f"{base}/connections/validate/client",
                    params={"client_id": GUID},
                    headers=hx,
                    timeout=30,
                )
            )
            assert response.status_code == 200 and "Looks like a client ID" in response.text
            fragments.append(took)
        # The measurement was taken while both checks still waited on Microsoft.
        for connection_id in ids:
            poll = session.get(f"{base}/connections/{connection_id}", timeout=10)
            assert "every 1s" in poll.text, "the check had already finished"
        print(
            f"\nlink_account_answer_s = {max(starts):.3f}\n"
            f"validate_client_while_two_checks_hang_s = {max(fragments):.3f}"
        )
        assert max(starts) < BOUND_SECONDS
        assert max(fragments) < BOUND_SECONDS
    finally:
        sim.clear_faults()  # the hanging requests end, so the workers stop promptly
        process.terminate()
        process.wait(timeout=40)
        process.stderr.close()

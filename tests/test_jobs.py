"""Background jobs: Link Account answers at once, the progress region shows each step, the job
ends in the database (interrupted when its process stopped), one job per connection at a time,
the poll only reads. Real HTTP against the simulator, MSAL doing the protocol."""

from __future__ import annotations

import html
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import storage
from portal.jobs.runner import DEADLINE_MESSAGE
from portal.jobs.view import INTERRUPTED_MESSAGE
from portal.storage.db import get_db
from tests.conftest import csrf_token
from tests.wizard.helpers import (
    HX,
    JOB_POLL,
    connection,
    follow_job,
    link,
    ready,
    start_wizard,
    text,
    wait_for_jobs,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_config(app_config, sim_server, tmp_path):
    app_config["CLOUDS_FILE"] = sim_server.clouds_file(str(tmp_path / "sim-clouds.json"))
    app_config["CERT_KEY_SIZE"] = 2048
    # A hanging Microsoft ends each call at this deadline (production: 20 s): the jobs still
    # outlive the request by seconds, and the suite does not wait 20 s per hang.
    app_config["OUTBOUND_DEADLINE_SECONDS"] = 4
    return app_config


@pytest.fixture
def wizard(client_a):
    return start_wizard(client_a)


@pytest.fixture
def tenant(sim):
    t = sim.create_tenant(cloud="global", domains=["contoso.onmicrosoft.com"])
    app = sim.create_app(t["id"], display_name="HR sync")
    return {"id": t["id"], "domain": "contoso.onmicrosoft.com", "client_id": app["app_id"]}


def start_check(wizard, where: str = "wizard"):
    return wizard.post(f"/connections/{wizard.id}/check", {"where": where})


def poll_url(response) -> str:
    found = JOB_POLL.search(response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)
    return html.unescape(found.group(1))


def jobs_of(app, connection_id: str) -> list[dict]:
    with app.app_context():
        return list(get_db().query("SELECT * FROM jobs WHERE connection_id = ?", [connection_id]))


def history(app, connection_id: str) -> tuple[int, int]:
    """(health events, connection.check audit rows) of the connection."""
    with app.app_context():
        events = storage.list_health_events(connection_id, limit=1000)
        audit = storage.list_audit_events(connection_id=connection_id, action="connection.check")
    return len(events), len(audit)


def poll_until(client, url: str, predicate, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        response = client.get(url, headers=HX)
        assert response.status_code == 200
        if predicate(text(response)):
            return response
        assert time.monotonic() < end, text(response)
        time.sleep(0.05)


def test_link_account_answers_at_once_while_microsoft_hangs(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    before = connection(app, wizard.id)
    sim.set_fault("token", "hang", seconds=8)
    response = start_check(wizard)
    body = text(response)
    # The answer is the progress region of a job still running: the request did not wait.
    assert response.status_code == 200 and body.lstrip().startswith('<div id="checklist"')
    assert 'id="job-check"' in body and 'hx-trigger="every 1s"' in body
    assert "Checking with Microsoft…" in body and "Link Account</button>" not in body
    # Each step shows as it completes: the tenant was found while the token request hangs.
    running = poll_until(
        wizard.client, poll_url(response), lambda b: "Find your tenant" in b and "every 1s" in b
    )
    assert text(running).lstrip().startswith('<div id="job-check"')
    assert "Waiting for Microsoft" in text(running)
    final = follow_job(wizard.client, running)
    body = text(final)
    assert final.headers["HX-Retarget"] == "#checklist" and "every 1s" not in body
    assert "did not let us finish this check" in body  # could not check; will retry
    after = connection(app, wizard.id)
    assert (after.state, after.health, after.last_check) == (
        before.state,
        before.health,
        before.last_check,
    )
    (job,) = jobs_of(app, wizard.id)
    assert job["status"] == "failed" and '"transient": true' in job["result"]
    assert [s["name"] for s in storage_steps(app, job["id"])][:2] == ["discovery", "token"]


def storage_steps(app, job_id: str) -> list[dict]:
    with app.app_context():
        found = storage.read_job(job_id)
    assert found is not None
    return found.steps


def test_the_steps_and_the_result_are_in_the_database(app, wizard, sim, tenant):
    """A reload (a new request, any worker) shows the same finished job and its result."""
    ready(app, wizard, sim, tenant)
    link(wizard)
    job = wait_for_jobs(app, wizard.id)
    assert job is not None and job.status == "done" and job.result == {"ok": True}
    names = [s["name"] for s in job.steps]
    assert names[:2] == ["discovery", "token"]
    for step in ("app role assignments", "directory roles", "Microsoft Graph: User.ReadWrite.All"):
        assert step in names
    assert "Role: User Administrator" in names and names[-1] == "total"  # each item, in order
    page = wizard.page()
    assert "Steps of the last check" in page and "Read the permissions granted" in page
    assert "Linked." in page


def test_a_second_check_while_one_runs_joins_it(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    sim.set_fault("token", "hang", seconds=3)
    first = start_check(wizard)
    second = start_check(wizard, where="page")
    assert len(jobs_of(app, wizard.id)) == 1
    assert poll_url(first).split("?")[0] == poll_url(second).split("?")[0]
    follow_job(wizard.client, first)
    assert history(app, wizard.id) == (1, 1)  # one attempt, one history entry


def test_the_one_unfinished_job_rule_is_the_database_s(app, wizard):
    """Two inserts racing past any check still cannot make a second unfinished job."""
    import sqlite3

    item = connection(app, wizard.id)
    with app.app_context():
        job, created = storage.start_job(item.id, item.org_id, "check", None, lease_seconds=60)
        again, created_again = storage.start_job(
            item.id, item.org_id, "uploaded", None, lease_seconds=60
        )
        assert created and not created_again and again.id == job.id
        with pytest.raises(sqlite3.IntegrityError):
            get_db().execute(
                "INSERT INTO jobs (id, connection_id, org_id, kind, status, created_at,"
                " lease_until) VALUES ('x', ?, ?, 'check', 'running', '', 0)",
                [item.id, item.org_id],
            )
        assert storage.finish_job(job.id, "done", {"ok": True})
        assert not storage.finish_job(job.id, "failed", {"ok": False})  # ends once
        assert storage.read_job(job.id).result == {"ok": True}


def test_a_job_whose_lease_expired_reads_as_interrupted(app, wizard, sim, tenant):
    """The worker running it was restarted: its heartbeat stopped, the job is not "running"
    forever, and the page says what happened."""
    ready(app, wizard, sim, tenant)
    item = connection(app, wizard.id)
    with app.app_context():
        job, _ = storage.start_job(
            item.id, item.org_id, "check", None, lease_seconds=5, now=time.time() - 60
        )
        assert storage.claim_job(job.id, time.time() - 30)  # its last heartbeat
    url = f"/connections/{wizard.id}/jobs/{job.id}?where=wizard"
    response = wizard.client.get(url, headers=HX)
    body = text(response)
    assert INTERRUPTED_MESSAGE in body and "every 1s" not in body
    assert response.headers["HX-Retarget"] == "#checklist"
    with app.app_context():
        assert storage.read_job(job.id).status == "interrupted"
    assert INTERRUPTED_MESSAGE in wizard.page()  # after a reload too
    # A new attempt is a new job.
    body = text(link(wizard))
    assert "Linked." in body and INTERRUPTED_MESSAGE not in body
    assert len(jobs_of(app, wizard.id)) == 2


def test_a_job_past_its_deadline_is_a_failed_attempt_and_records_no_finding(
    app_config, app, wizard, sim, tenant
):
    app.config["JOB_DEADLINE_SECONDS"] = 1
    ready(app, wizard, sim, tenant)
    sim.set_fault("token", "hang", seconds=30)
    body = text(follow_job(wizard.client, start_check(wizard)))
    assert DEADLINE_MESSAGE in body
    (job,) = jobs_of(app, wizard.id)
    assert job["status"] == "failed" and '"transient": true' in job["result"]
    sim.clear_faults()  # Microsoft answers at last (the hanging request ends)
    time.sleep(1.5)  # the abandoned work's next step report ends it
    # One failed attempt in the health record; no finding, no report.
    item = connection(app, wizard.id)
    assert item.last_check is None and item.state == "waiting"
    assert item.error_class == "transient" and item.failing_since == item.last_attempt_at
    with app.app_context():
        outcomes = [e.outcome for e in storage.list_health_events(wizard.id)]
    assert outcomes == ["check_transient"]


def test_support_cannot_start_a_job(app, wizard, sim, tenant, support_client):
    ready(app, wizard, sim, tenant)
    token = csrf_token(support_client, f"/connections/{wizard.id}")
    for path in ("check", "setup/uploaded"):
        response = support_client.post(
            f"/connections/{wizard.id}/{path}", data={"csrf_token": token}, headers=HX
        )
        assert response.status_code == 403, path
    assert jobs_of(app, wizard.id) == []


def test_a_check_needs_the_csrf_token(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    response = wizard.client.post(f"/connections/{wizard.id}/check", data={}, headers=HX)
    assert response.status_code == 400
    assert jobs_of(app, wizard.id) == []


def test_another_organization_gets_404_on_the_poll(app, wizard, sim, tenant, client_b, org_b):
    ready(app, wizard, sim, tenant)
    response = start_check(wizard)
    url = poll_url(response)
    assert client_b.get(url, headers=HX).status_code == 404
    follow_job(wizard.client, response)
    assert client_b.get(url, headers=HX).status_code == 404
    # Nor is a job found under another connection, even one's own.
    token = csrf_token(client_b, "/connections/new")
    other = client_b.post("/connections/new", data={"kind": "customer_owned", "csrf_token": token})
    other_id = other.headers["Location"].split("/")[2]
    job_id = url.split("/jobs/")[1].split("?")[0]
    assert client_b.get(f"/connections/{other_id}/jobs/{job_id}", headers=HX).status_code == 404


def test_polling_does_not_write_history_entries(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant, grants=())
    with app.app_context():
        storage.update_connection(wizard.id, consented_at=storage.utcnow())
    sim.set_fault("token", "latency", ms=2000)
    response = start_check(wizard)
    url = poll_url(response)
    polls = 0
    while "every 1s" in text(response):
        response = wizard.client.get(url, headers=HX)
        polls += 1
        time.sleep(0.02)
    assert polls > 5
    for _ in range(5):  # polling a finished job changes nothing either
        wizard.client.get(url, headers=HX)
    assert history(app, wizard.id) == (1, 1)
    # After a consent the checklist starts a new attempt later: a new job, one more entry.
    body = text(response)
    assert 'hx-trigger="load delay:3s"' in body and '"attempt": "1"' in body
    link(wizard, attempt="1")
    assert history(app, wizard.id) == (2, 2) and len(jobs_of(app, wizard.id)) == 2


def test_without_javascript_the_progress_page_reloads_itself(app, wizard, sim, tenant):
    ready(app, wizard, sim, tenant)
    sim.set_fault("token", "hang", seconds=2)
    response = link(wizard, htmx=False)
    assert response.status_code == 302
    page = wizard.page()
    assert f'<noscript><meta http-equiv="refresh" content="2; url={wizard.url}">' in page
    wait_for_jobs(app, wizard.id)
    assert "<noscript><meta" not in wizard.page()


def test_no_thread_before_the_first_job(tmp_path):
    """gunicorn forks after importing wsgi.py: building the app must start no thread (a
    forked child would inherit a pool whose threads exist only in its parent)."""
    code = (
        "import threading, wsgi\n"
        "from portal.jobs import executor\n"
        "assert not executor.started()\n"
        "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('portal')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PORTAL_INSTANCE_PATH": str(tmp_path / "instance")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_fragment_never_carries_the_reload_for_browsers_without_javascript(
    app, wizard, sim, tenant
):
    """htmx parses fragments with scripting off: a <noscript> meta refresh in one would be
    live and navigate the page away."""
    ready(app, wizard, sim, tenant)
    sim.set_fault("token", "latency", ms=1500)
    response = start_check(wizard)
    assert "every 1s" in text(response) and "<noscript>" not in text(response)
    poll = wizard.client.get(poll_url(response), headers=HX)
    assert "<noscript>" not in text(poll)
    assert "<noscript><meta" in wizard.page()
    follow_job(wizard.client, response)

"""The only SQL in the portal, one module per aggregate; this package's namespace is its API.

Callers write ``storage.get_connection(...)``; each function lives in the module of its aggregate
(``storage/connections.py``), beside the SQL of that table. ``db`` (connections, transactions),
``migrations`` (the schema) and ``vault`` (encryption at rest) are the layers underneath.
"""

from __future__ import annotations

from portal.storage.api_keys import (  # noqa: F401
    ApiKey,
    create_api_key,
    get_api_key,
    list_api_keys,
    revoke_api_key,
    touch_api_key,
)
from portal.storage.certificates import (  # noqa: F401
    active_certificate,
    add_certificate,
    get_certificate,
    list_certificates,
    pending_certificate,
    promote_certificate,
    set_certificate_status,
)
from portal.storage.connections import (  # noqa: F401
    LIFECYCLE_FIELDS,
    UPDATABLE_CONNECTION_FIELDS,
    ConnectionDeleted,
    connection_counts,
    create_connection,
    delete_connection,
    failing_counts,
    get_connection,
    get_connection_or_raise,
    list_all_connections,
    list_connections,
    organizations_linking_tenant,
    save_draft,
    update_connection,
    write_lifecycle,
)
from portal.storage.db import get_db, write_transaction  # noqa: F401
from portal.storage.deletion import (  # noqa: F401
    delete_connection_and_secrets,
    deletion_audit,
)
from portal.storage.events import (  # noqa: F401
    add_health_event,
    audit_connection,
    list_audit_events,
    list_health_events,
    record_audit,
)
from portal.storage.flows import (  # noqa: F401
    FLOW_TTL_SECONDS,
    browser_binding,
    consume_auth_flow,
    create_auth_flow,
    purge_auth_flows,
)
from portal.storage.guests import (  # noqa: F401
    NO_PASSWORD,
    ConnectSession,
    SetupLink,
    create_connect_session,
    create_setup_link,
    find_setup_link,
    get_connect_session,
    get_setup_link,
    guest_user,
    list_setup_links,
    note_setup_link_account,
    note_setup_link_use,
    revoke_setup_link,
    spend_connect_session,
    spend_setup_links,
)
from portal.storage.handoffs import (  # noqa: F401
    CONFIRM_TTL_SECONDS,
    PENDING_TOKEN_PURPOSE,
    LinkAttempt,
    consume_confirmed_handoff,
    create_handoff,
    discard_pending_link,
    hold_for_confirmation,
    latest_link_attempt,
    open_handoff,
    purge_unconfirmed_links,
    record_link_outcome,
    take_pending_link,
)
from portal.storage.job_runs import (  # noqa: F401
    JobRun,
    JobStatus,
    finish_job_run,
    job_statuses,
    list_job_runs,
    record_job_progress,
    start_job_run,
)
from portal.storage.jobs import (  # noqa: F401
    JOB_KINDS,
    JOB_STATUSES,
    Job,
    add_job_step,
    claim_job,
    finish_job,
    job_counts,
    latest_job,
    read_job,
    renew_job_lease,
    start_job,
)
from portal.storage.leases import (  # noqa: F401
    claim_refresh_lease,
    holds_refresh_lease,
    release_refresh_lease,
)
from portal.storage.logins import (  # noqa: F401
    PAIR_MEMORY_SECONDS,
    login_lockout_seconds,
    pair_delay_seconds,
    recent_failures,
    record_login_attempt,
)
from portal.storage.records import (  # noqa: F401
    CERT_STATUSES,
    DELETED,
    FLOW_KINDS,
    HEALTHS,
    KINDS,
    LINKED_STATES,
    ROLES,
    STATES,
    AuditEvent,
    AuthFlow,
    CertificateRecord,
    Connection,
    DeletionReceipt,
    Handoff,
    HealthEvent,
    Organization,
    User,
)
from portal.storage.reviews import (  # noqa: F401
    LinkReview,
    create_link_review,
    decide_link_review,
    get_link_review,
    list_link_reviews,
)
from portal.storage.sql import (  # noqa: F401
    ping,
    table_counts,
    utcnow,
)
from portal.storage.users import (  # noqa: F401
    TOTP_PENDING,
    TOTP_SECRET,
    OrganizationNameTaken,
    accept_totp_step,
    create_organization,
    create_user,
    end_sessions,
    enrol_totp,
    get_organization,
    get_organization_by_external_id,
    get_organization_by_name,
    get_pending_totp_secret,
    get_totp_secret,
    get_user,
    get_user_by_email,
    list_organizations,
    list_users,
    normalize_email,
    put_organization_by_external_id,
    put_pending_totp_secret,
    record_login,
    remove_mfa,
    set_organization_require_mfa,
    set_password_hash,
    unused_recovery_codes,
    use_recovery_code,
)
from portal.storage.vault_blobs import (  # noqa: F401
    connection_id_for_secret,
    delete_secret,
    get_secret,
    put_secret,
    rotate_secrets,
    vault_key_usage,
)

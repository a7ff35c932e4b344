-- 0001: the system of record for the editable CRM entities, in SQL that SQLite and PostgreSQL both accept.
-- Columns follow pipelines/contract/crm_contract.yaml (tests/test_store.py checks they agree), plus
-- `version`, the optimistic-lock counter a portal edit must match to be accepted.

CREATE TABLE teams (
    team_id TEXT NOT NULL PRIMARY KEY,
    team_name TEXT NOT NULL,
    region TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_teams_updated_at ON teams (updated_at);

CREATE TABLE users (
    user_id TEXT NOT NULL PRIMARY KEY,
    full_name TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    team_id TEXT,
    hired_at DATE NOT NULL,
    is_active BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_users_updated_at ON users (updated_at);

CREATE TABLE accounts (
    account_id TEXT NOT NULL PRIMARY KEY,
    account_name TEXT NOT NULL,
    account_type TEXT NOT NULL,
    industry TEXT,
    employees BIGINT,
    email TEXT,
    phone TEXT,
    city TEXT,
    country TEXT NOT NULL,
    region TEXT NOT NULL,
    owner_user_id TEXT,
    source_system TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    is_archived BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_accounts_updated_at ON accounts (updated_at);

CREATE TABLE contacts (
    contact_id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    job_title TEXT,
    is_primary BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    is_archived BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_contacts_updated_at ON contacts (updated_at);

CREATE TABLE leads (
    lead_id TEXT NOT NULL PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    company TEXT,
    email TEXT,
    phone TEXT,
    lead_source TEXT NOT NULL,
    campaign_id TEXT,
    owner_user_id TEXT,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    first_response_at TIMESTAMP,
    converted_at TIMESTAMP,
    converted_account_id TEXT,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_leads_updated_at ON leads (updated_at);

CREATE TABLE opportunities (
    opportunity_id TEXT NOT NULL PRIMARY KEY,
    account_id TEXT NOT NULL,
    owner_user_id TEXT NOT NULL,
    opportunity_name TEXT NOT NULL,
    stage TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    expected_close_date DATE NOT NULL,
    product_id TEXT,
    lead_id TEXT,
    lead_source TEXT,
    campaign_id TEXT,
    lost_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP,
    is_archived BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_opportunities_updated_at ON opportunities (updated_at);

CREATE TABLE opportunity_stage_history (
    stage_event_id TEXT NOT NULL PRIMARY KEY,
    opportunity_id TEXT NOT NULL,
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    changed_by_user_id TEXT,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_opportunity_stage_history_changed_at ON opportunity_stage_history (changed_at);

CREATE TABLE tasks (
    task_id TEXT NOT NULL PRIMARY KEY,
    owner_user_id TEXT NOT NULL,
    account_id TEXT,
    opportunity_id TEXT,
    subject TEXT NOT NULL,
    task_type TEXT NOT NULL,
    status TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    reminder_at TIMESTAMP,
    completed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    is_archived BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_tasks_updated_at ON tasks (updated_at);

-- Append-only audit log: who changed what, when, with the row before and after (JSON text).
CREATE TABLE audit_log (
    audit_id TEXT NOT NULL PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    record_id TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT
);
CREATE INDEX ix_audit_log_record ON audit_log (entity, record_id);
CREATE INDEX ix_audit_log_occurred_at ON audit_log (occurred_at);

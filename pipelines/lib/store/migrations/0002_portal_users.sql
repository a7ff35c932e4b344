-- 0002: who may sign in to the portal. Not a CRM entity (no contract entry, never ingested): a sign-in maps
-- to a role (admin, manager, sales_rep, analyst) and, for managers and reps, to the CRM user and team whose
-- records they may see and change. Passwords are stored only as bcrypt hashes.

CREATE TABLE portal_users (
    username TEXT NOT NULL PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    user_id TEXT,
    team_id TEXT,
    is_active BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX ix_portal_users_user_id ON portal_users (user_id);

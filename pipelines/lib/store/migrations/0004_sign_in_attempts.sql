-- 0004: the portal's sign-in log. One row per sign-in attempt (success, wrong password, unknown or disabled
-- sign-in, refused while locked), per lockout (with the time it ends) and per unlock. The lockout policy
-- (pipelines/lib/portal_users.py) counts the failures here, so it holds across portal processes and
-- restarts. A name that is not a sign-in is stored only as a hash (a password typed into the name field
-- must not end up in the log); never a password or hash.

CREATE TABLE sign_in_attempts (
    attempt_id TEXT NOT NULL PRIMARY KEY,
    username TEXT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    outcome TEXT NOT NULL,
    locked_until TIMESTAMP
);
CREATE INDEX ix_sign_in_attempts_username ON sign_in_attempts (username, attempted_at);

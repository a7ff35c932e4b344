"""`crm generate` says where it wrote the operational store: the PostgreSQL server when given one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pipelines.lib.home import REPO_ROOT

pytestmark = pytest.mark.postgres

CRM = Path(sys.executable).with_name("crm")


def test_generate_with_a_postgresql_url_prints_that_store_with_the_password_masked(tmp_path, postgres_url):
    url = postgres_url.replace("://postgres@", "://postgres:s3cret-pw@", 1)  # the test server trusts it
    assert "s3cret-pw" in url
    env = {**os.environ, "CRM_OPERATIONAL_DB_URL": url, "COLUMNS": "400"}
    out = tmp_path / "home"
    done = subprocess.run([str(CRM), "generate", "--customers", "10", "--out", str(out)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout + done.stderr
    assert "s3cret-pw" not in printed
    assert url.split("?")[0].replace("s3cret-pw", "***") in printed
    assert "operational.db" not in printed
    assert not (out / "operational.db").exists()
    with psycopg.connect(postgres_url) as conn:  # the rows really are on the server
        assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] > 0

"""`make run`'s demo prints a sign-in per role beside the keys, and each one works."""

from __future__ import annotations

import re

from tests.portal.conftest import sign_in

HOMES = {"ADMIN": "/admin/", "FINANCE": "/finance/", "BRAND": "/brand/", "PARTNER": "/partner/"}


def test_demo_seed_prints_a_working_sign_in_for_each_role(committed_app, tmp_path):
    runner = committed_app.test_cli_runner()
    keys_file = tmp_path / "demo-keys.env"
    result = runner.invoke(args=["demo", "seed", "--env-file", str(keys_file)])
    assert result.exit_code == 0, result.output
    printed = dict(
        (m.group(1), (m.group(2), m.group(3)))
        for m in re.finditer(r"^\s+(ADMIN|FINANCE|BRAND|PARTNER)\s+(\S+@demo\.example)\s+(\S+)$", result.output, re.M)
    )
    assert set(printed) == set(HOMES)
    for role, (email, password) in printed.items():
        client = committed_app.test_client()
        assert sign_in(client, email, password).status_code == 302, role
        page = client.get(HOMES[role])
        assert page.status_code == 200 and f"{email} ({role.lower()})" in page.get_data(as_text=True)
    again = runner.invoke(args=["demo", "seed", "--env-file", str(keys_file)])
    assert "already seeded" in again.output and printed["PARTNER"][1] in again.output

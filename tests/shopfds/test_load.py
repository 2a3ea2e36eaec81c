"""``shopfds load`` against the real shop: ``--tps`` counts checkouts, and a login the shop's limiter
refuses to an attacker is the defence working, not a failure of the load."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from shopfds.cli import app
from shopfds.load import mix
from shopfds.stack import down, up

TPS, SECONDS = 6.0, 10


def lock_out(shop: str, ip: str) -> None:
    """Fail logins from ``ip`` until the shop's limiter refuses that address (429); one account
    per address, or the account's lock would answer before the address is counted."""
    for _ in range(30):
        answer = httpx.post(f"{shop}/v1/auth/login", json={"email": f"nobody-{ip}@example.com", "password": "wrong"},
                            headers={"X-Forwarded-For": ip}, timeout=10)
        if answer.status_code == 429:
            return
        assert answer.status_code == 401, answer.text
    pytest.fail(f"the login limiter never refused {ip}")


def test_tps_is_checkouts_and_refused_attacker_logins_are_blocked_not_failed(tmp_path: Path) -> None:
    stack = up(tmp_path, with_prometheus=False, seed_ports=False)
    try:
        for ip in mix.CTI_IPS:  # every cti_ip attacker logs in from one of these
            lock_out(stack.urls["ecommerce"], ip)
        result = CliRunner().invoke(app, ["load", "--tps", str(TPS), "--duration", str(SECONDS),
                                          "--workdir", str(tmp_path)],
                                    env={mix.ATTACKS_ENV: "cti_ip"}, terminal_width=250)
    finally:
        down(tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "load" / "load_labels.json").read_text())
    # All users start at once: their logins, each from the shopper's own address, are not
    # refused as one burst from the load host (which made every shopper's login a failure).
    assert " 0 failures" in result.output, result.output
    blocked = summary["blocked_by_defence"]
    assert blocked.get("cti_ip", 0) >= 1 and set(blocked) == {"cti_ip"}, summary
    assert f"blocked by defence (logins refused by the shop's limiter, 429): cti_ip {blocked['cti_ip']}" \
        in result.output
    assert not [k for k in summary["decisions"] if k.startswith("cti_ip:")], summary  # none got to check out
    rate = summary["checkouts"] / summary["seconds"]
    assert f"{summary['checkouts']} checkouts, {rate:.1f} checkouts/s (target {TPS:g})" in result.output
    # Shoppers make nearly all of these checkouts (the attackers were refused): counted as
    # shopper actions, the same --tps made about a quarter of them.
    assert rate >= 0.4 * TPS, summary


@pytest.mark.parametrize("tps", [0.1, 3.0, 40.0, 2000.0])
def test_users_and_pace_make_the_checkouts_asked_for(tps: float) -> None:
    users, pace = mix.users_for(tps)
    weighted = users - mix.FIXED_USERS
    assert weighted >= 5 and users <= 400
    assert weighted * mix.checkouts_per_user_second(pace=pace) == pytest.approx(tps)


def test_unknown_attack_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown attack phishing"):
        mix.attacks({mix.ATTACKS_ENV: "cti_ip, phishing"})
    assert mix.attacks({mix.ATTACKS_ENV: " cti_ip "}) == {"cti_ip": mix.ATTACKS["cti_ip"]}
    assert mix.attacks({}) == mix.ATTACKS

"""One test per fraud pattern: the pattern's factor appears and the decision moves off approve.

Each test first shows the same traffic approved while below the pattern's threshold, so the
decision changes for the pattern and not for anything else.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import samples

from ..conftest import Backend, serve
from .conftest import make_fds, txn


async def _evaluate(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/v1/fds/evaluate", json=txn(**changes))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _approved(evaluations: list[dict[str, Any]]) -> None:
    for ev in evaluations:
        assert (ev["decision"], ev["risk_level"], ev["risk_factors"]) == ("approve", "low", []), ev


async def test_ordinary_payment_is_approved(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        ev = await _evaluate(client)
    _approved([ev])
    assert ev["risk_score"] == 0.0
    assert ev["engines"]["rule"]["status"] == ev["engines"]["cti"]["status"] == "ok"
    # No ML service in this test: the policy decides on rules + CTI and says so.
    assert ev["engines"]["ml"]["status"] == "unavailable"
    assert ev["degraded"] is True and ev["degraded_reason"] == "ml_unavailable"


async def test_user_velocity(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        first = [await _evaluate(client, card_last4=f"{i:04d}") for i in range(7)]
        eighth = await _evaluate(client, card_last4="0008")
    _approved(first)
    assert "velocity_user" in eighth["risk_factors"]
    assert eighth["decision"] == "additional_auth"


async def test_card_velocity(backend: Backend, tmp_path) -> None:
    async def on_card(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        return await _evaluate(client, user_id=f"user-{i}", ip_address=f"10.0.0.{i}", device_id=f"d-{i}",
                               card_bin="520000", card_last4="4444")

    async with serve(make_fds(backend, tmp_path)) as client:
        first = [await on_card(client, i) for i in range(3)]
        fourth = await on_card(client, 3)
    _approved(first)
    assert fourth["risk_factors"] == ["velocity_card"]
    assert fourth["decision"] == "additional_auth"


async def test_ip_velocity(backend: Backend, tmp_path) -> None:
    async def from_ip(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        return await _evaluate(client, user_id=f"user-{i}", card_last4=f"{i:04d}", device_id=f"d-{i}",
                               ip_address="172.16.5.5")

    async with serve(make_fds(backend, tmp_path)) as client:
        first = [await from_ip(client, i) for i in range(9)]
        tenth = await from_ip(client, 9)
    _approved(first)
    assert tenth["risk_factors"] == ["velocity_ip"]
    assert tenth["decision"] == "additional_auth"


async def test_device_velocity(backend: Backend, tmp_path) -> None:
    async def on_device(client: httpx.AsyncClient, i: int) -> dict[str, Any]:
        return await _evaluate(client, user_id=f"user-{i}", card_last4=f"{i:04d}", ip_address=f"10.9.0.{i}",
                               device_id="shared-phone")

    async with serve(make_fds(backend, tmp_path)) as client:
        first = [await on_device(client, i) for i in range(9)]
        tenth = await on_device(client, 9)
    _approved(first)
    assert tenth["risk_factors"] == ["velocity_device"]
    assert tenth["decision"] == "additional_auth"


async def test_amount_far_above_history(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        history = [await _evaluate(client, amount=30_000) for _ in range(3)]
        usual = await _evaluate(client, amount=60_000)
        spike = await _evaluate(client, amount=600_000)
    _approved([*history, usual])
    assert spike["risk_factors"] == ["amount_spike"]
    assert spike["decision"] == "additional_auth"


async def test_amount_history_is_in_krw(backend: Backend, tmp_path) -> None:
    # 400 USD is ~540,000 KRW: the same spike as above, in another currency.
    async with serve(make_fds(backend, tmp_path)) as client:
        _approved([await _evaluate(client, amount=30_000) for _ in range(3)])
        spike = await _evaluate(client, amount=400, currency="USD")
    assert "amount_spike" in spike["risk_factors"]


async def test_card_testing(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        probes = [await _evaluate(client, amount=1_000, card_last4="9999") for _ in range(2)]
        third = await _evaluate(client, amount=1_000, card_last4="9999")
    _approved(probes)
    assert third["risk_factors"] == ["card_testing"]
    assert third["decision"] == "hold" and third["risk_level"] == "high"


async def test_country_mismatch(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        same = await _evaluate(client, billing_country="kr", shipping_country="KR")
        other = await _evaluate(client, billing_country="KR", shipping_country="NG")
    _approved([same])
    # A weak signal alone (gifts abroad, travellers): reported, approved; it compounds with others.
    assert other["risk_factors"] == ["country_mismatch"]
    assert (other["decision"], other["risk_level"]) == ("approve", "low")


async def test_new_device_with_high_amount(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        known = [await _evaluate(client, amount=50_000, device_id="home-pc"),
                 await _evaluate(client, amount=800_000, device_id="home-pc")]
        new_small = await _evaluate(client, amount=20_000, device_id="strange-phone")
        new_big = await _evaluate(client, amount=800_000, device_id="another-strange-phone")
    _approved([*known, new_small])
    assert new_big["risk_factors"] == ["new_device_high_amount"]
    assert new_big["decision"] == "additional_auth"


async def test_signals_compound(backend: Backend, tmp_path) -> None:
    # Two medium signals together reach hold: a mismatch on the card-velocity transaction.
    async with serve(make_fds(backend, tmp_path)) as client:
        for i in range(3):
            await _evaluate(client, user_id=f"u-{i}", card_last4="7777", ip_address=f"10.3.0.{i}")
        both = await _evaluate(client, user_id="u-9", card_last4="7777", ip_address="10.3.0.9",
                               shipping_country="US")
    assert both["risk_factors"] == ["velocity_card", "country_mismatch"]
    assert both["decision"] == "hold"


async def test_blocklists_block(backend: Backend, tmp_path) -> None:
    app = make_fds(backend, tmp_path)
    async with serve(app) as client:
        hits = [await _evaluate(client, user_id="user-blocked-demo"),
                await _evaluate(client, email="Fraudster@Example.com"),
                await _evaluate(client, email="anyone@fraud.example"),
                await _evaluate(client, card_bin="999999")]
        clean = await _evaluate(client)
    factors = [ev["risk_factors"] for ev in hits]
    assert factors == [["blocklist_user"], ["blocklist_email"], ["blocklist_email_domain"], ["blocklist_card_bin"]]
    assert {(ev["decision"], ev["risk_level"]) for ev in hits} == {("block", "blocked")}
    _approved([clean])
    blocked = {s.labels["reason"]: s.value for s in samples(app.state.telemetry, "fds_blocked_transactions")}
    assert blocked == {"blocklist": 4.0}


async def test_threat_feeds(backend: Backend, tmp_path) -> None:
    async with serve(make_fds(backend, tmp_path)) as client:
        bad_range = await _evaluate(client, ip_address="203.0.113.77")  # inside a listed /24
        bad_v6 = await _evaluate(client, ip_address="2001:db8:bad::1")
        device = await _evaluate(client, device_id="device-emulator-farm-01", user_id="user-2")
        risky_bin = await _evaluate(client, card_bin="426398", user_id="user-3")
        disposable = await _evaluate(client, email="x@sub.mailinator.com", user_id="user-4")
        near_miss = await _evaluate(client, ip_address="203.0.114.1", email="x@notmailinator.com", user_id="user-5")
    assert bad_range["risk_factors"] == bad_v6["risk_factors"] == ["cti_bad_ip"]
    assert bad_range["decision"] == "block"
    assert (device["risk_factors"], device["decision"]) == (["cti_bad_device"], "hold")
    assert (risky_bin["risk_factors"], risky_bin["decision"]) == (["cti_risky_bin"], "additional_auth")
    assert (disposable["risk_factors"], disposable["decision"]) == (["cti_disposable_email"], "additional_auth")
    _approved([near_miss])

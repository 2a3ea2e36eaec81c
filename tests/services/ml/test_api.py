"""The ML API on both back ends: default model at start, train, list, deploy, artifact + ETag,
scoring, validation, auth; and the ML metrics on /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from otel_setup.catalog import ML
from otel_setup.settings import TelemetrySettings
from services.common.security import issue_token
from services.ml.app import create_app
from services.ml.features import FEATURES
from services.ml.generator import generate
from services.ml.model import ModelArtifact
from services.ml.settings import Settings

from ..conftest import Backend, serve

SMALL = {"default_samples": 3_000}  # a default model in a fraction of a second


def make_app(backend: Backend, tmp_path: Any, **extra: Any):
    settings = Settings(**backend.overrides, **(SMALL | extra))
    return create_app(settings, telemetry_settings=TelemetrySettings(trace_store_dir=str(tmp_path / "traces")))


def bearer(app: Any, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(app.state.settings.jwt_secret, role, role, 60)}"}


def features_of(index: int = 0) -> dict[str, float]:
    txn = generate(1_000, 0.05, 1)[index]
    return dict(zip(FEATURES, txn.features, strict=True))


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    body = (await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})).text
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


async def test_first_start_trains_and_deploys_a_default_model(backend: Backend, tmp_path: Any) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        listing = (await client.get("/v1/ml/models")).json()
        health = await client.get("/health")
    assert health.status_code == 200
    assert listing["deployed_version"] == 1
    [model] = listing["items"]
    assert model["version"] == 1 and model["deployed"] is True and model["samples"] == 3_000
    assert model["algorithm"] == "logistic_regression" and model["metrics"]["auc"] >= 0.9


async def test_restart_keeps_the_registry_and_publishes_its_model(backend: Backend, tmp_path: Any) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        await client.post("/v1/ml/models/1/deploy")  # no token: nothing changes
    second = make_app(backend, tmp_path, default_samples=5_000)
    async with serve(second) as client:
        listing = (await client.get("/v1/ml/models")).json()
        metrics = await scrape(client)
    assert [m["version"] for m in listing["items"]] == [1]  # no second default model
    assert metrics["ml_model_deployed_version"] == 1.0
    assert metrics["ml_model_auc"] == listing["items"][0]["metrics"]["auc"]


async def test_train_list_deploy_fetch_and_score(backend: Backend, tmp_path: Any) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        trained = await client.post("/v1/ml/train", json={"samples": 2_000, "seed": 3},
                                    headers=bearer(app, "service"))
        listing = (await client.get("/v1/ml/models")).json()
        deployed = await client.post("/v1/ml/models/2/deploy", headers=bearer(app, "admin"))
        artifact = await client.get("/v1/ml/models/deployed")
        same = await client.get("/v1/ml/models/deployed", headers={"If-None-Match": artifact.headers["ETag"]})
        bare = await client.get("/v1/ml/models/deployed", headers={"If-None-Match": "2"})
        stale = await client.get("/v1/ml/models/deployed", headers={"If-None-Match": '"1"'})
        scored = await client.post("/v1/ml/score", json={"features": features_of()})
        after = (await client.get("/v1/ml/models")).json()
    assert trained.status_code == 201
    assert trained.json()["version"] == 2 and trained.json()["deployed"] is False
    assert trained.json()["samples"] == 2_000
    assert [m["version"] for m in listing["items"]] == [2, 1] and listing["deployed_version"] == 1
    assert deployed.status_code == 200 and deployed.json()["deployed"] is True
    model = ModelArtifact.from_dict(artifact.json())
    assert model.version == 2 and artifact.headers["ETag"] == '"2"'
    assert (same.status_code, bare.status_code, stale.status_code) == (304, 304, 200)
    assert same.content == b"" and same.headers["ETag"] == '"2"'
    assert scored.status_code == 200 and scored.json()["version"] == 2
    assert scored.json()["probability"] == model.probability(list(features_of().values()))
    assert after["deployed_version"] == 2
    assert [m["deployed"] for m in after["items"]] == [True, False]


async def test_train_with_deploy_and_redeploy_is_idempotent(backend: Backend, tmp_path: Any) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        trained = await client.post("/v1/ml/train", json={"samples": 1_000, "fraud_rate": 0.5, "deploy": True},
                                    headers=bearer(app, "admin"))
        again = await client.post("/v1/ml/models/2/deploy", headers=bearer(app, "admin"))
        back = await client.post("/v1/ml/models/1/deploy", headers=bearer(app, "admin"))
        metrics = await scrape(client)
        version = (await client.get("/v1/ml/models/deployed")).json()["version"]
    assert trained.status_code == 201 and trained.json()["deployed"] is True
    assert again.json()["deployed"] is True and back.json()["version"] == 1
    assert version == 1
    assert metrics["ml_model_deployments_total"] == 3.0  # default, 2, back to 1 (the no-op is not counted)
    assert metrics["ml_model_deployed_version"] == 1.0


async def test_concurrent_deploys_leave_exactly_one_deployed(backend: Backend, tmp_path: Any) -> None:
    # Regression: on PostgreSQL the unique index fires at the UPDATE of a racing deployment,
    # which used to escape as a 503; racing deployments are now retried (last one wins).
    app = make_app(backend, tmp_path)
    codes: list[int] = []
    async with serve(app) as client:
        for seed in (1, 2):
            await client.post("/v1/ml/train", json={"samples": 1_000, "seed": seed}, headers=bearer(app, "admin"))
        for _ in range(8):
            responses = await asyncio.gather(*(client.post(f"/v1/ml/models/{v}/deploy", headers=bearer(app, "admin"))
                                               for v in (1, 2, 3, 1, 2, 3)))
            codes += [r.status_code for r in responses]
            listing = (await client.get("/v1/ml/models")).json()
            assert sum(m["deployed"] for m in listing["items"]) == 1
            assert listing["deployed_version"] in (1, 2, 3)
    assert set(codes) <= {200, 409} and codes.count(200) >= len(codes) // 2


async def test_score_validates_every_feature(backend: Backend, tmp_path: Any) -> None:
    features = features_of()
    missing = {k: v for k, v in features.items() if k != "card_velocity"}
    async with serve(make_app(backend, tmp_path)) as client:
        ok = await client.post("/v1/ml/score", json={"features": features})
        lacking = await client.post("/v1/ml/score", json={"features": missing})
        unknown = await client.post("/v1/ml/score", json={"features": features | {"shoe_size": 1.0}})
        text = await client.post("/v1/ml/score", json={"features": features | {"amount_log": "lots"}})
        huge = await client.post("/v1/ml/score", json={"features": features | {"ip_velocity": 1e300}})
        nan = await client.post("/v1/ml/score", content=b'{"features": {"amount_log": NaN}}',
                                headers={"content-type": "application/json"})
        empty = await client.post("/v1/ml/score", json={})
    assert ok.status_code == 200 and 0.0 <= ok.json()["probability"] <= 1.0
    assert [r.status_code for r in (lacking, unknown, text, huge, nan, empty)] == [422] * 6
    assert lacking.json()["detail"][0]["loc"] == ["body", "features", "card_velocity"]
    assert unknown.json()["detail"][0]["loc"] == ["body", "features", "shoe_size"]
    assert "lots" not in text.text  # the rejected input is not echoed


async def test_unknown_versions_are_404(backend: Backend, tmp_path: Any) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        codes = [(await client.post(f"/v1/ml/models/{v}/deploy", headers=bearer(app, "admin"))).status_code
                 for v in (99, 0, -1, 2**63)]
        not_int = await client.post("/v1/ml/models/latest/deploy", headers=bearer(app, "admin"))
    assert codes == [404, 404, 404, 404]
    assert not_int.status_code == 422


async def test_train_and_deploy_need_a_staff_token(backend: Backend, tmp_path: Any) -> None:
    app = make_app(backend, tmp_path)
    async with serve(app) as client:
        calls = [("/v1/ml/train", {"samples": 1_000}), ("/v1/ml/models/1/deploy", None)]
        anonymous = [(await client.post(url, json=body)).status_code for url, body in calls]
        shopper = [(await client.post(url, json=body, headers=bearer(app, "user"))).status_code for url, body in calls]
        bad = await client.post("/v1/ml/train", json={"samples": 10}, headers=bearer(app, "admin"))
        listing = (await client.get("/v1/ml/models")).json()
    assert anonymous == [401, 401] and shopper == [403, 403]
    assert bad.status_code == 422
    assert len(listing["items"]) == 1


async def test_without_a_model_score_is_503_and_artifact_404(backend: Backend, tmp_path: Any) -> None:
    async with serve(make_app(backend, tmp_path, train_on_start=False)) as client:
        listing = (await client.get("/v1/ml/models")).json()
        artifact = await client.get("/v1/ml/models/deployed")
        scored = await client.post("/v1/ml/score", json={"features": features_of()})
        metrics = await scrape(client)
    assert listing == {"items": [], "deployed_version": None}
    assert artifact.status_code == 404
    assert scored.status_code == 503 and "no model is deployed" in scored.json()["detail"]
    assert metrics["ml_predictions_total|result=no_model"] == 1.0


async def test_every_ml_metric_is_on_metrics_after_start_and_one_score(backend: Backend, tmp_path: Any) -> None:
    async with serve(make_app(backend, tmp_path)) as client:
        scored = (await client.post("/v1/ml/score", json={"features": features_of()})).json()
        model = ModelArtifact.from_dict((await client.get("/v1/ml/models/deployed")).json())
        metrics = await scrape(client)
    names = {key.split("|")[0] for key in metrics}
    for spec in ML:
        assert spec.name in names or f"{spec.name}_count" in names, spec.name
    assert metrics["ml_model_auc"] == model.metrics["auc"]
    assert metrics["ml_model_precision"] == model.metrics["precision"]
    assert metrics["ml_model_recall"] == model.metrics["recall"]
    assert metrics["ml_model_deployed_version"] == 1.0
    assert metrics["ml_model_trainings_total|algorithm=logistic_regression|result=success"] == 1.0
    assert metrics["ml_model_trainings_total|algorithm=logistic_regression|result=failure"] == 0.0
    assert metrics["ml_model_training_duration_seconds_count"] == 1.0
    assert metrics["ml_model_deployments_total"] == 1.0
    label = "fraud" if scored["probability"] >= model.threshold else "legit"
    assert metrics[f"ml_predictions_total|result={label}"] == 1.0
    assert sum(v for k, v in metrics.items() if k.startswith("ml_predictions_total|")) == 1.0
    assert metrics["ml_prediction_duration_seconds_count"] == 1.0
    # No server error yet: the known error types are there, at 0, before the first one.
    assert {k: v for k, v in metrics.items() if k.startswith("ml_errors_total|")} == {
        "ml_errors_total|error_type=http_500": 0.0, "ml_errors_total|error_type=http_503": 0.0}
    assert metrics["ml_http_requests_total|endpoint=/v1/ml/score|method=POST|status_code=200"] == 1.0

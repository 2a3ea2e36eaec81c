"""The ML service (:8002): trains the fraud model, keeps its versions, serves the deployed one.

    uvicorn services.ml.main:app --port 8002

What it does
    - ``generator`` simulates shoppers and five documented fraud patterns (``scenarios``) over a
      simulated clock, with the same aggregates and feature vector the FDS computes live
      (``features``). The load generator reuses ``generator.generate``.
    - ``training`` fits StandardScaler + LogisticRegression (balanced classes) on a generated set,
      measures it on a stratified 25 % holdout and exports a JSON ``ModelArtifact`` (``model``).
    - ``registry`` stores every model in ``ml_models``; exactly one is deployed.
    - At first start (empty registry) a default model is trained and deployed, in seconds.
    - The FDS polls ``GET /v1/ml/models/deployed`` (ETag = version) and scores in-process;
      ``POST /v1/ml/score`` scores over HTTP. API: docs/services.md "ml".

Settings (``SHOPFDS_`` prefix; shared ones in ``services.common.settings``)
    ``SHOPFDS_TRAIN_ON_START`` (true), ``SHOPFDS_DEFAULT_SAMPLES`` (20000),
    ``SHOPFDS_DEFAULT_FRAUD_RATE`` (0.05), ``SHOPFDS_DEFAULT_SEED`` (7): the default model.

Metrics: see ``lifecycle`` (``ml_model_*``, ``ml_predictions_total``, ``ml_prediction_duration_seconds``).
"""

"""Grafana dashboards as code (grafana-foundation-sdk), one module per dashboard.

``python -m dashboards.generate`` writes ``dashboards/<uid>.json``; Grafana's file provider
(``grafana/provisioning/dashboards/dashboards.yml``) loads those files into the folder "ShopFDS".
The committed JSON must equal the generator's output (``tests/pipeline/test_dashboards.py``).
"""

# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench soak prometheus wrk clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Prometheus (with promtool), Alertmanager (amtool) and VictoriaMetrics (the remote-write test) from
# Debian when missing and apt exists; the demo works without them.
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1 || ! command -v victoria-metrics >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager victoria-metrics >/dev/null \
	    && (systemctl stop prometheus prometheus-alertmanager victoria-metrics 2>/dev/null; pkill -x prometheus 2>/dev/null; pkill -x prometheus-aler 2>/dev/null; pkill -x victoria-metric 2>/dev/null; true); \
	  else echo "prometheus not installed and apt-get unavailable: Prometheus tests will be skipped"; fi; \
	fi

# wrk (the closed-loop load of bench.saturation) from Debian when missing and apt exists.
wrk:
	@command -v wrk >/dev/null 2>&1 || { if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk not installed and apt-get unavailable: the saturation bench and its test are skipped"; fi; }

demo: $(STAMP) prometheus
	$(BIN)/shopfds demo

# checkov (tests/deploy) in a virtualenv of its own: it pins packaging<24, which pytest 9 refuses.
CHECKOV := .venv-checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet checkov==3.3.30

test: $(STAMP) prometheus wrk $(CHECKOV)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check otel_setup shopfds services dashboards tests bench
	$(BIN)/mypy otel_setup services shopfds dashboards

# Each bench prints its tables and leaves its figures in $(RESULTS); BENCHMARKS.md is written from them.
RESULTS ?= bench/results
# The shop under load on PostgreSQL + Redis with faults cycling, 20 minutes (CI runs a 2-minute version): bench/soak.py.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --json $(RESULTS)/soak.json

bench: $(STAMP) prometheus wrk
	mkdir -p $(RESULTS)
	$(BIN)/python -m bench.saturation --json $(RESULTS)/saturation.json
	$(BIN)/python -m bench.telemetry_cost --json $(RESULTS)/telemetry_cost.json
	$(BIN)/python -m bench.checkout --json $(RESULTS)/checkout.json
	$(BIN)/python -m bench.checkout --backend postgres --json $(RESULTS)/checkout_postgres.json
	$(BIN)/python -m bench.checkout_saturation --json $(RESULTS)/checkout_saturation.json
	$(BIN)/python -m bench.workers --json $(RESULTS)/workers.json
	$(BIN)/python -m bench.services --json $(RESULTS)/services.json
	$(BIN)/python -m bench.accuracy --json $(RESULTS)/accuracy.json
	$(BIN)/python -m bench.backends_down --json $(RESULTS)/backends_down.json
	$(BIN)/python -m bench.before_after --json $(RESULTS)/before_after.json
	$(BIN)/python -m bench.report $(RESULTS) BENCHMARKS.md bench/NOTES.md
	$(BIN)/python -m bench.capacity $(RESULTS)

clean:
	rm -rf $(VENV) .venv-checkov .shopfds

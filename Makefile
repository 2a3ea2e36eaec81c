# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench soak prometheus clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Prometheus (with promtool) and Alertmanager (amtool) from Debian when missing and apt exists; the demo works without it.
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null \
	    && (systemctl stop prometheus prometheus-alertmanager 2>/dev/null; pkill -x prometheus 2>/dev/null; pkill -x prometheus-aler 2>/dev/null; true); \
	  else echo "prometheus not installed and apt-get unavailable: Prometheus tests will be skipped"; fi; \
	fi

demo: $(STAMP) prometheus
	$(BIN)/shopfds demo

test: $(STAMP) prometheus
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check otel_setup shopfds services dashboards tests bench
	$(BIN)/mypy otel_setup services shopfds dashboards

# Each bench prints its tables and leaves its figures in $(RESULTS); BENCHMARKS.md is written from them.
RESULTS ?= bench/results
# The shop under load on PostgreSQL + Redis with faults cycling, 20 minutes (not in CI): bench/soak.py.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --json $(RESULTS)/soak.json

bench: $(STAMP) prometheus
	mkdir -p $(RESULTS)
	$(BIN)/python -m bench.telemetry_cost --json $(RESULTS)/telemetry_cost.json
	$(BIN)/python -m bench.checkout --json $(RESULTS)/checkout.json
	$(BIN)/python -m bench.checkout --backend postgres --json $(RESULTS)/checkout_postgres.json
	$(BIN)/python -m bench.services --json $(RESULTS)/services.json
	command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null; $(BIN)/python -m bench.backends_down --json $(RESULTS)/backends_down.json
	$(BIN)/python -m bench.report $(RESULTS) BENCHMARKS.md bench/NOTES.md

clean:
	rm -rf $(VENV) .shopfds

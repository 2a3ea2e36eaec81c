# One image for the four ShopFDS services; docker-compose.yml picks the app with `command`:
#   uvicorn services.<ecommerce|fds|ml|admin>.main:app --host 0.0.0.0 --port <8000|8001|8002|8003>
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first (pyproject.toml rarely changes), then the code.
COPY pyproject.toml README.md ./
COPY otel_setup ./otel_setup
COPY shopfds ./shopfds
COPY services ./services
# The admin service serves the Markdown of docs/ at /runbooks/ (where the alerts' runbook links lead).
COPY docs ./docs
# The services run from /app (PYTHONPATH): their data files (services/fds/rules.yaml, CTI feeds)
# are read next to the code, so the install is for the dependencies and the `shopfds` command.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app shopfds \
    && mkdir -p /app/.shopfds \
    && chown shopfds /app/.shopfds

USER shopfds

EXPOSE 8000 8001 8002 8003

CMD ["uvicorn", "services.ecommerce.main:app", "--host", "0.0.0.0", "--port", "8000"]

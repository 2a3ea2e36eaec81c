"""``uvicorn services.ml.main:app --port 8002``."""

from services.ml.app import create_app

app = create_app()

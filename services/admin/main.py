"""ASGI entry point: ``uvicorn services.admin.main:app --port 8003``."""

from services.admin.app import create_app

app = create_app()

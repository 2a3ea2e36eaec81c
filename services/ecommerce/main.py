"""ASGI entry point: ``uvicorn services.ecommerce.main:app --port 8000``."""

from services.ecommerce.app import create_app

app = create_app()

"""``uvicorn services.fds.main:app --port 8001``"""

from .app import create_app

app = create_app()

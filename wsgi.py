"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

from network.app import create_app

app = create_app()

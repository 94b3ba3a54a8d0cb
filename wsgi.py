"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi ...`."""

import gc

from network import serving
from network.app import create_app

app = create_app()
# How the database is waited for depends on the worker class: chosen once, here (network/serving.py).
serving.start()
# What start-up built (modules, the mappers, compiled statements) lives as long as the process: moved
# out of the collector's sight, a full collection no longer walks it. In the gunicorn worker
# that serves postbacks that walk was some 10 % of a request's CPU (bench/requests).
gc.freeze()

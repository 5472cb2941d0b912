"""The Flask-free core: asset catalog, trading rules, money, quotes, and every shared name.

Everything here is importable by the web app, the engine and the poller alike; nothing here
imports Flask, SQLAlchemy or another package of this project.
"""

"""Postgres: the pool, the migrations and the embedded server."""

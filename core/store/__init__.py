"""Postgres: the pool, the migrations, the embedded server, the app role and tenancy, the instance lock."""

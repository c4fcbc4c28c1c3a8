"""The REST API adapter: HTTP requests -> pipeline turns, replies -> JSON and server-sent events."""

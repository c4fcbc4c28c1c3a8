"""NeMo Guardrails configuration files (config.yml, Colang flows), shipped as package data."""

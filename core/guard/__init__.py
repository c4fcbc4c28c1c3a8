"""Parley guardrails: masking, input and output rails on NeMo Guardrails, safety events."""

"""The harmful-request classifier's weights and figures, shipped as package data."""

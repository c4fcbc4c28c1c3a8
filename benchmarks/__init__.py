"""Benchmarks: scripts that print JSON; run them as `python benchmarks/<name>.py --json`."""

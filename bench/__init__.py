"""Benchmarks: the bot as a real process over real HTTP, against the test kit's fakes.

``python -m bench.run`` runs them and prints one Markdown table; see bench/README.md.
"""

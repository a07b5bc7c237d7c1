"""Pamoja's benchmark: numbers (throughput, latency, SQL per request, memory), not timed tests.

Run with `python -m bench.run` (`make bench`); see bench/run.py for what it loads and measures.
"""

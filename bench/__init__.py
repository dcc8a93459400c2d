"""Throughput, latency and memory of otelml beside its peers, measured in one run (``python -m bench``)."""

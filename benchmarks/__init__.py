"""Benchmark suites: ``python -m benchmarks SUITE [--quick] [--json PATH]`` from the repo root."""

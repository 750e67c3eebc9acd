"""The simulation: a synthetic city, the in-process reference run and the demo's god view.

Only the command line, benchmarks and tests import this package; no party does.
"""

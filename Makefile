# psc: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-fast lint typecheck bench-quick vectors paper clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ckks,service,paper]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m psc demo --subjects 10000 --out demo-out --json demo-out/demo.json

lint: $(STAMP)
	$(PY) -m ruff check psc tests benchmarks protocols papers
	$(PY) -m ruff format --check psc

typecheck: $(STAMP)
	$(PY) -m mypy psc papers/build papers/build_report.py

test: lint typecheck
	$(PY) -m pytest -q -n 2 --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

bench-quick: $(STAMP)
	$(PY) -m benchmarks aggregate --quick --json benchmarks/results/aggregate-quick.json

vectors: $(STAMP)
	$(PY) -m protocols.generate

# the technical report from benchmarks/results/*.json: papers/psc.built.md, .html, .pdf, figures
paper: $(STAMP)
	$(PY) -m papers.build

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache

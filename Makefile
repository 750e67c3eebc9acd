# psc: the two commands a new user runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: demo test test-slow test-fast lint typecheck bench-quick vectors paper lock clean

# every dependency at the exact version in constraints.txt (make lock rewrites it)
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ckks,service,paper]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m psc demo --subjects 10000 --out demo-out --json demo-out/demo.json

lint: $(STAMP)
	$(PY) -m ruff check psc tests benchmarks protocols papers
	$(PY) -m ruff format --check psc

typecheck: $(STAMP)
	$(PY) -m mypy psc papers/build papers/build_report.py

# make test: lint, types and every test but the slow large-parameter group (about 6 min);
# make test-slow: that group (CI runs both: .ci/run)
test: lint typecheck
	$(PY) -m pytest -q -n 2 -m 'not slow' --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow'

bench-quick: $(STAMP)
	$(PY) -m benchmarks aggregate --quick --json benchmarks/results/aggregate-quick.json

# after a dependency change in pyproject.toml: install it, then pin what is installed
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,ckks,service,paper]'
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

vectors: $(STAMP)
	$(PY) -m protocols.generate

# the technical report from benchmarks/results/*.json: papers/psc.built.md, .html, .pdf, figures
paper: $(STAMP)
	$(PY) -m papers.build

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache

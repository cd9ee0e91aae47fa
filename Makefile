# Quick start: `make run` (set up + open the app), `make test` (set up + run the tests).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_CPU ?= torch==2.13.0

.PHONY: setup run render render-storybook test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# A GPU user can install their own torch into .venv before; otherwise take the pinned CPU build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_CPU)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/consistory-studio

# The headless main job: render the toy-world sample book with the built-in toy model (real pictures, offline;
# on a copy, so the shipped sample stays clean).
render: setup
	rm -rf out/toy-storybook && mkdir -p out && cp -r projects/toy-storybook out/
	$(VENV)/bin/consistory-studio render out/toy-storybook --out out/book.pdf

# The fox-and-bear storybook needs a real model for pictures; with the tiny test model it checks the pipeline.
render-storybook: setup
	rm -rf out/sample-storybook && mkdir -p out && cp -r projects/sample-storybook out/
	$(VENV)/bin/consistory-studio render out/sample-storybook --out out/storybook.pdf --model tiny

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: setup
	$(PY) tests/bench/bench_engine.py --model tiny --json
	$(PY) tests/bench/bench_export.py --json

clean:
	rm -rf $(VENV) .pytest_cache out

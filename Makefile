# Two commands for a newcomer: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of this exact version lies on the development machines' disk; any other
# version makes pip fetch a multi-GB CUDA build. GPU machines may install any torch >= 2.4.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed-$(shell echo '$(TORCH)' | tr -c 'a-zA-Z0-9.\n' _)

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

install: $(STAMP)

# The quick mixture-of-Gaussians sweep on a local Ray (CPU), then its report.
demo: install
	$(BIN)/python -m orchestrator sweep mog --profile quick --storage ./results

# Each test run gets an empty data/classifier cache of its own (MNIST fetched, classifier
# trained), so a pass never depends on what an earlier run left in ~/.cache.
test: install
	cache=$$(mktemp -d); UNROLLED_GAN_CACHE=$$cache $(BIN)/python -m pytest -q; status=$$?; rm -rf $$cache; exit $$status

# Slow end-to-end tests; pytest exits 5 when none is selected, which is not a failure.
test-slow: install
	cache=$$(mktemp -d); UNROLLED_GAN_CACHE=$$cache $(BIN)/python -m pytest -q -m slow; status=$$?; rm -rf $$cache; \
	[ $$status -eq 0 ] || [ $$status -eq 5 ]

# ruff: lint and formatting (pyproject.toml holds its settings); CI fails on either.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench.unroll_cost

clean:
	rm -rf $(VENV) results

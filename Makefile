# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint format bench clean

# `make demo`: the core dependencies (torch CPU pinned) and nothing the demo does not use
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $(DEMO_STAMP)

# `make test`: adds the extras the tests need (dev tools, Ray, PostgreSQL's driver, Playwright)
$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(TEST_STAMP)

# the main job: a coarse-to-fine search on MNIST-1D with 2 workers, then an ensemble of the best 3
# (a second `make demo` continues/reprints the same study)
demo: $(DEMO_STAMP)
	$(BIN)/trainlab search examples/mnist1d-search.yaml \
		$$(test -d runs/search/mnist1d-search/trials && echo --resume)
	$(BIN)/trainlab ensemble --study mnist1d-search --top 3
	@echo "watch the runs and the study live: $(BIN)/trainlab dashboard  (http://127.0.0.1:8050/)"

test: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(TEST_STAMP)
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info

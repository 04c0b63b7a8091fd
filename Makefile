# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

# the main job: a coarse-to-fine search on MNIST-1D with 2 workers, then an ensemble of the best 3
# (a second `make demo` continues/reprints the same study)
demo: $(STAMP)
	$(BIN)/trainlab search examples/mnist1d-search.yaml \
		$$(test -d runs/search/mnist1d-search/trials && echo --resume)
	$(BIN)/trainlab ensemble --study mnist1d-search --top 3
	@echo "watch the runs and the study live: $(BIN)/trainlab dashboard runs  (http://127.0.0.1:8050/)"

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench

clean:
	rm -rf $(VENV) runs build src/*.egg-info

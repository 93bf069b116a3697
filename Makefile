# The few commands people need. `make run` starts everything; `make test` proves it works.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The CPU wheel on CI machines; on a GPU host pip picks the CUDA build of the same version.
TORCH ?= torch==2.13.0
# The GPU machine's own Python, which has torch (make gpu-check).
GPU_PYTHON ?= python3

.PHONY: run test lint bench faults gpu-wheels gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel

$(VENV)/.installed: $(BIN)/python pyproject.toml client/pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	# openai-whisper without triton (CUDA-only, ~1 GB); its other needs come from [models].
	$(BIN)/pip install -q --no-deps openai-whisper==20250625
	# Only the weights of Resemblyzer's voice encoder are used (its librosa/webrtcvad front
	# end is not); pyannote.audio only for the two-speaker test recording it ships.
	$(BIN)/pip install -q --no-deps resemblyzer==0.1.4 pyannote.audio==4.0.7
	$(BIN)/pip install -q -e ".[models,ct2,test,embedded]" -e ./client
	touch $@

run: $(VENV)/.installed
	PORT=$(PORT) ./scripts/run-local.sh

test: $(VENV)/.installed
	./scripts/system-deps.sh
	./scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/python scripts/generate_sync.py --check
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python scripts/generate_sync.py --check

$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[bench]"
	touch $@

bench: $(VENV)/.bench-installed
	./scripts/system-deps.sh wrk
	./scripts/services.sh
	$(BIN)/python -m bench.run_all

faults: $(VENV)/.installed
	./scripts/services.sh
	$(BIN)/python -m bench.faults.run_all

# A GPU machine without a registry: make the carried folder here, then on that machine
# (Python 3.12 and torch there) `make gpu-check` installs it offline and runs the check.
gpu-wheels: $(VENV)/.installed
	./scripts/gpu-wheels.sh

gpu-check:
	$(GPU_PYTHON) -m bench.gpu_check --wheels var/gpu-wheels $(GPU_CHECK_ARGS)

clean:
	rm -rf var .pytest_cache

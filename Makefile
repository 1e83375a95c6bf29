# longrun: the whole set-up is `make dev` (run it locally) and `make test`.
SHELL := bash
VENV := .venv
EMULATOR := $(VENV)/.emulator-installed

.PHONY: dev test lint fmt bench build clean

## Run the system locally: moto + resources from template.yaml + the local runtime on :3000.
dev: $(EMULATOR)
	cargo build -p longrun-local
	infra/scripts/dev.sh

## Every test: unit, contract (memory + emulator) and end to end over HTTP.
test: $(EMULATOR)
	infra/scripts/test.sh

## Formatting and clippy, warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace --all-targets

## Benchmarks against the emulator; numbers go to BENCHMARKS.md.
bench: $(EMULATOR)
	infra/scripts/bench.sh

# The project-local Python venv with the pinned emulator.
$(EMULATOR): infra/requirements-emulator.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r infra/requirements-emulator.txt
	touch $@

clean:
	cargo clean
	rm -rf $(VENV) .local

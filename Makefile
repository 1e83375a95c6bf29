# longrun: the whole set-up is `make dev` (run it locally) and `make test`.
SHELL := bash
VENV := .venv
EMULATOR := $(VENV)/.emulator-installed
TOOLS_VENV := .venv-tools
TOOLS := $(TOOLS_VENV)/.tools-installed
LOCALSTACK_VENV := .venv-localstack
LOCALSTACK := $(LOCALSTACK_VENV)/.localstack-installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev test test-localstack smoke lint fmt bench build package clean

## Run the system locally: moto + resources from template.yaml + the local runtime on :3000
## (and build longrun-admin, to redrive its dead-lettered jobs).
dev: $(EMULATOR)
	cargo build -p longrun-local -p longrun-admin
	infra/scripts/dev.sh

## Every test: unit, contract (memory + emulator) and end to end over HTTP.
test: $(EMULATOR)
	infra/scripts/test.sh

## The same suite on AWS's own emulators instead of moto: LocalStack (host mode,
## no Docker) for SQS and S3, DynamoDB Local (Java; fetched once with npm) for DynamoDB.
test-localstack: $(EMULATOR) $(LOCALSTACK)
	infra/scripts/test-localstack.sh

## A short check of a running stack over its public API, with a caller's token only:
## make smoke API=https://<api id>.execute-api.<region>.amazonaws.com TOKEN=<JWT> [TOKEN_OTHER=<another caller's JWT>]
smoke:
	@test -n "$(API)" -a -n "$(TOKEN)" || { echo "usage: make smoke API=<base URL> TOKEN=<bearer token> [TOKEN_OTHER=<token>]"; exit 2; }
	cargo run --quiet -p longrun-e2e --bin longrun-smoke -- --api "$(API)" --token "$(TOKEN)" $(if $(TOKEN_OTHER),--other-token "$(TOKEN_OTHER)")

## Formatting, clippy (warnings as errors), sam validate --lint and cfn-lint on the template.
lint: $(TOOLS)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(TOOLS_VENV)/bin/sam validate --lint --template template.yaml
	$(TOOLS_VENV)/bin/cfn-lint template.yaml
	infra/scripts/check-dependencies.sh

fmt:
	cargo fmt --all

build:
	cargo build --workspace --all-targets

## Benchmarks against the emulator; numbers go to BENCHMARKS.md.
bench: $(EMULATOR)
	infra/scripts/bench.sh

## sam build: every function for arm64 (cargo-lambda + zig); sizes into BENCHMARKS.md.
package: $(TOOLS)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(TOOLS_VENV)/bin:$$PATH" sam build --template template.yaml
	infra/scripts/package-sizes.sh

# The deploy and lint tools, pinned, in their own venv.
$(TOOLS): infra/requirements-tools.txt
	python3 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/pip install --quiet -r infra/requirements-tools.txt
	touch $@

# The project-local Python venv with the pinned emulator.
$(EMULATOR): infra/requirements-emulator.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r infra/requirements-emulator.txt
	touch $@

# LocalStack (host mode), pinned, in its own venv: `make test-localstack`.
$(LOCALSTACK): infra/requirements-localstack.txt
	python3 -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCALSTACK_VENV)/bin/pip install --quiet -r infra/requirements-localstack.txt
	touch $@

clean:
	cargo clean
	rm -rf $(VENV) $(TOOLS_VENV) $(LOCALSTACK_VENV) .local .aws-sam

# ballast: the two commands of the README, and the pieces they are made of.
CARGO ?= cargo

.PHONY: run test deps bench

## Installs missing system packages, builds, renders the default config offline and measures it (the
## real-time daemon arrives with a later issue).
run: deps
	@$(CARGO) build --release -q -p ballastctl -p ballastd
	@scripts/demo.sh

## Installs missing system packages, then: unit + integration tests, clippy (warnings are errors), rustfmt.
test: deps
	$(CARGO) test --workspace
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

deps:
	@scripts/install-deps.sh

## Criterion benchmarks (not part of `make test`).
bench:
	$(CARGO) bench --bench loudness --bench dynamics --bench limiter --bench generators --bench engine --bench render

# ballast: the two commands of the README, and the pieces they are made of.
CARGO ?= cargo

.PHONY: run demo test deps bench onnxruntime

## Installs missing system packages, builds, and runs ballastd with config/default.toml on the running
## JACK server, or on a private one with the dummy driver when none is running. Ctrl-C stops both.
run:
	@CARGO="$(CARGO)" scripts/run.sh

## Offline: renders the default config to a file and measures it (no JACK needed).
demo: deps
	@$(CARGO) build --release -q -p ballastctl -p ballastd
	@scripts/demo.sh

## Installs missing system packages, then: unit + integration tests, clippy (warnings are errors), rustfmt.
test: deps onnxruntime
	$(CARGO) test --workspace
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all -- --check

deps:
	@scripts/install-deps.sh

## The ONNX Runtime 1.31.1 shared library from the official PyPI wheel, checksum-verified, cached in
## ${XDG_CACHE_HOME:-~/.cache}/ballast/onnxruntime/1.31.1/ (ballast-models loads it at run time).
onnxruntime:
	@scripts/fetch-onnxruntime.sh >/dev/null

## Criterion benchmarks (not part of `make test`).
bench:
	$(CARGO) bench --bench loudness --bench dynamics --bench limiter --bench generators --bench engine --bench render

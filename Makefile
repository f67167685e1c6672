# ballast: the two commands of the README, and the pieces they are made of.
CARGO ?= cargo

.PHONY: run demo test deps bench onnxruntime models

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
	$(CARGO) bench --bench loudness --bench dynamics --bench limiter --bench generators --bench engine --bench render --bench notes

## Retrains the compressor-parameter estimator (not part of `make test`; about 15 min of dataset and
## 30 min of training on two shared cores): dataset -> train -> ONNX export -> evaluation, then refreshes
## the committed model, its held-out CI set and the measurements the model card quotes. Needs the venv of
## models/train/requirements.txt (MODELS_PYTHON) and wesnoth-1.16-music.
MODELS_PYTHON ?= .venv/bin/python
MODELS_DATA ?= target/models-data
MODELS_MINUTES ?= 30
models: deps onnxruntime
	$(CARGO) build --release -p ballast-models --bin build-dataset --bin evaluate-model
	target/release/build-dataset --out $(MODELS_DATA) --train 10000 --validation 1500 --test 1500 \
		--multiband-fraction 0.2 --seed 1 --quiet
	cd models/train && $(abspath $(MODELS_PYTHON)) train.py --data $(abspath $(MODELS_DATA)) \
		--out $(abspath $(MODELS_DATA))/model.pt --minutes $(MODELS_MINUTES)
	cd models/train && $(abspath $(MODELS_PYTHON)) export.py --checkpoint $(abspath $(MODELS_DATA))/model.pt \
		--out ../estimator.onnx
	cd models/train && $(abspath $(MODELS_PYTHON)) make_ci_set.py --data $(abspath $(MODELS_DATA)) --out ../tests/data/heldout
	target/release/evaluate-model --model models/estimator.onnx --data $(MODELS_DATA) \
		--json models/estimator.metrics.json

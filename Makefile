# ballast: the two commands of the README, and the pieces they are made of.
CARGO ?= cargo

.PHONY: run demo test deps bench onnxruntime models models-notes

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
	$(CARGO) bench --bench loudness --bench dynamics --bench limiter --bench generators --bench engine --bench render \
		--bench dbus_set --bench notes --bench workers

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
	$(MAKE) models-notes

## The note model's part of `make models` (about 2 min of data, NOTES_MINUTES of training, 3 min of
## evaluation): Bach chorales from music21's corpus -> tokens -> GRU (one torch thread) -> ONNX step model
## -> NLL against n-gram baselines and the held-out chorales file -> generated-piece metrics from Rust.
## Refreshes models/notes.onnx, models/notes.metrics.json and models/tests/data/notes_heldout.txt.
## Needs music21 in the venv (pip install -r models/train/requirements.txt).
NOTES_DATA ?= target/notes-data
NOTES_MINUTES ?= 15
models-notes: onnxruntime
	$(CARGO) build --release -p ballast-models --bin evaluate-notes
	mkdir -p $(NOTES_DATA)
	cd models/train/notes && $(abspath $(MODELS_PYTHON)) data.py --out $(abspath $(NOTES_DATA))
	cd models/train/notes && $(abspath $(MODELS_PYTHON)) train.py --data $(abspath $(NOTES_DATA)) \
		--out $(abspath $(NOTES_DATA))/notes.pt --minutes $(NOTES_MINUTES)
	cd models/train/notes && $(abspath $(MODELS_PYTHON)) export.py --checkpoint $(abspath $(NOTES_DATA))/notes.pt \
		--out ../../notes.onnx
	cd models/train/notes && $(abspath $(MODELS_PYTHON)) evaluate.py --data $(abspath $(NOTES_DATA)) \
		--checkpoint $(abspath $(NOTES_DATA))/notes.pt --json $(abspath $(NOTES_DATA))/nll.json \
		--heldout ../../tests/data/notes_heldout.txt
	target/release/evaluate-notes --pieces 100 --temperature 0.6 --temperature 1.0 --temperature 0.5 \
		--temperature 0.7 --top-p 0.8 --top-p 1.0 --avoid-parallels --nll $(NOTES_DATA)/nll.json \
		--json models/notes.metrics.json

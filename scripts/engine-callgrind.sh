#!/bin/sh
# Instructions per block of the engine bench's variants, counted by callgrind (repeatable on a loaded
# machine, unlike wall time). Usage: scripts/engine-callgrind.sh [BENCH_BINARY]
# (default: the newest target/release/deps/engine-*). Prints KIND BLOCK VARIANT INSTRUCTIONS_PER_BLOCK.
set -eu
bin=${1:-$(ls -t target/release/deps/engine-* | grep -v '\.d$' | head -n 1)}
blocks=1000
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for kind in bench_gain compressor; do
    for block in 64 256; do
        for variant in direct direct_checked engine; do
            BALLAST_ENGINE_COUNT="$kind:$block:$variant" valgrind --tool=callgrind \
                --toggle-collect='*count_blocks*' --callgrind-out-file="$out/cg" "$bin" >/dev/null 2>"$out/log"
            total=$(sed -n 's/^summary: //p' "$out/cg")
            echo "$kind $block $variant $((total / blocks))"
        done
    done
done

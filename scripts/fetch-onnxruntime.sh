#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library that ballast-models loads at run time (ort's `load-dynamic`).
#
# Debian has no onnxruntime package and ort's own build would download binaries at build time, so the
# library comes from the official `onnxruntime` wheel on PyPI (fetched with pip, the registry's own
# client): `onnxruntime/capi/libonnxruntime.so.1.31.1`, checked against the wheel's RECORD, cached in
#   ${XDG_CACHE_HOME:-~/.cache}/ballast/onnxruntime/1.31.1/libonnxruntime.so.1.31.1
# which is one of the places `ballast_models::runtime::init` looks. Idempotent: nothing is downloaded
# when the cached library is present and its checksum matches. Prints the library's path.
set -euo pipefail

VERSION=1.31.1
LIB="libonnxruntime.so.${VERSION}"
# sha256 of the library in the manylinux_2_28 x86_64 wheels of 1.31.1 (from their RECORD; the same file
# ships in every CPython build of the wheel).
SHA256_URLSAFE_B64="_EQRL74G19aJxX4R04YgMfZHEQB-TuAg-O7VGF_SwdM"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ballast/onnxruntime/${VERSION}"
TARGET="${CACHE}/${LIB}"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "fetch-onnxruntime: only Linux x86_64 is supported (this is $(uname -s)-$(uname -m));" >&2
  echo "  install ONNX Runtime ${VERSION} yourself and set ORT_DYLIB_PATH or [models] onnxruntime" >&2
  exit 1
fi

PYTHON="$(command -v python3 || true)"
if [ -z "$PYTHON" ]; then
  echo "fetch-onnxruntime: python3 (with pip) is needed to fetch the onnxruntime wheel" >&2
  exit 1
fi

# Hash of a file in the wheel RECORD's notation (urlsafe base64 of the sha256, no padding).
record_hash() {
  "$PYTHON" - "$1" <<'PY'
import base64, hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
print(base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode())
PY
}

if [ -f "$TARGET" ] && [ "$(record_hash "$TARGET")" = "$SHA256_URLSAFE_B64" ]; then
  echo "$TARGET"
  exit 0
fi

if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "fetch-onnxruntime: pip is missing (apt-get install python3-pip)" >&2
  exit 1
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "fetch-onnxruntime: downloading the onnxruntime==${VERSION} wheel from PyPI" >&2
# Any CPython build of the wheel carries the same library; pinning one makes the download independent of
# the local Python's version.
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
  --platform manylinux_2_28_x86_64 -d "$WORK" "onnxruntime==${VERSION}" >&2

WHEEL="$(ls "$WORK"/onnxruntime-"${VERSION}"-*.whl | head -n 1)"
mkdir -p "$CACHE"
# Extract next to the target, verify against the wheel's own RECORD and the pinned hash, then rename
# into place so a crash never leaves a half-written library that looks valid.
"$PYTHON" - "$WHEEL" "$VERSION" "$CACHE" "$SHA256_URLSAFE_B64" <<'PY'
import base64, hashlib, os, sys, zipfile
wheel, version, cache, pinned = sys.argv[1:]
member = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    record = z.read(f"onnxruntime-{version}.dist-info/RECORD").decode()
    expected = None
    for line in record.splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if path == member:
            expected = digest.removeprefix("sha256=")
    if expected is None:
        sys.exit(f"fetch-onnxruntime: {member} is not in the wheel's RECORD")
    data = z.read(member)
got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
if got != expected:
    sys.exit(f"fetch-onnxruntime: {member}: sha256 {got} does not match the wheel's RECORD ({expected})")
if got != pinned:
    sys.exit(f"fetch-onnxruntime: {member}: sha256 {got} is not the pinned {pinned}")
tmp = os.path.join(cache, f".libonnxruntime.so.{version}.part")
with open(tmp, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
os.chmod(tmp, 0o755)
os.rename(tmp, os.path.join(cache, f"libonnxruntime.so.{version}"))
PY
echo "fetch-onnxruntime: cached ${TARGET}" >&2
echo "$TARGET"

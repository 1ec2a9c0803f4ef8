#!/bin/bash
# What `benchmarks/device_tiny_validation.sh` carries to a device machine whose image lacks the
# serving path's packages (session 22: Python 3.12, torch 2.11, no Ray, diffusers, open_clip,
# simpy or highspy, and grpcio 1.84): the wheels pip resolves for ray[serve], diffusers,
# open_clip_torch, simpy, highspy, typer and click at Python 3.12, less the packages the image
# has (HAVE: one name per line, # comments; benchmarks/device_image_packages.txt, from this
# workplace's device KINDS.md) and CUDA's,
# unzipped into one folder without Ray's Java jars, RLlib and py-spy (to fit the 64 MiB a call
# carries) and xz-compressed into OUT/site.tar.xz; and grpcio-reflection 1.84 beside it.
#
#     bash benchmarks/device_wheels.sh benchmarks/device_image_packages.txt .device  # then carry .device
set -euo pipefail
have=$1 out=$2
[ -f "$have" ] || { echo "error: $have: no such file (the device image's package names)"; exit 2; }
command -v unzip > /dev/null || { echo "error: unzip not found (it keeps Ray's binaries executable)"; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1 manylinux_2_5 manylinux_2_31 manylinux_2_34 manylinux_2_35; do
  platforms+=(--platform "${p}_x86_64")
done
target=(--python-version 3.12 --implementation cp "${platforms[@]}" --only-binary=:all:)
pip install -q --dry-run --ignore-installed --report "$work/report.json" "${target[@]}" \
  --target "$work/none" "ray[serve]==2.60.0" diffusers open_clip_torch "simpy>=4.1.1,<4.2" \
  "highspy==1.16.0" aiohttp httpx "typer==0.29.2" "click==8.5.1"
python - "$work/report.json" "$have" > "$work/wanted.txt" <<'PY'
import json, sys
lines = (n.strip() for n in open(sys.argv[2]))
have = {n.lower().replace("_", "-") for n in lines if n and not n.startswith("#")}
have -= {"typer", "click"}  # the CLI's pinned versions travel
for item in json.load(open(sys.argv[1]))["install"]:
    name = item["metadata"]["name"].lower().replace("_", "-")
    if name not in have and not name.startswith("nvidia-") and name != "py-spy":
        print(f"{name}=={item['metadata']['version']}")
PY
pip download -q --no-deps "${target[@]}" -d "$work/wheels" -r "$work/wanted.txt"
mkdir "$work/site"
for wheel in "$work"/wheels/*.whl; do unzip -q -o "$wheel" -d "$work/site"; done  # keeps +x
rm -rf "$work/site/ray/jars" "$work/site/ray/rllib"
tar -C "$work/site" -cf - . | xz -9 -T2 > "$out/site.tar.xz"
pip download -q --no-deps --only-binary=:all: -d "$out" "grpcio-reflection==1.84.0"
echo "$(wc -l < "$work/wanted.txt") packages -> $out/site.tar.xz ($(du -h "$out/site.tar.xz" | cut -f1))"

#!/bin/bash
# The tiny diffusers validation on a lent device machine's CPUs, pinned to 2 cores (the
# footprint here and in CI): `validation_report.py --run --only tiny-diffusers-static` with a
# shorter profile (8 rounds), so that it fits one 10-minute call (session 22, results/validation/
# device/). Run from the repository root there with `.device` carried; writes $OUT/log,
# $OUT/VALIDATION.md and $OUT/validation.tgz (the profile and the real runs, whose simulations
# `t2isim validate --reuse-real` redoes on any machine), with session 23's preemption reading
# (`benchmarks/preemption_fit.py`) at the end of the log. Arguments go on to validation_report.py
# (session 22 ran it with none, and the third run did not fit; next, `--tiny-rounds 4`, then
# the same with DEVICE_CORES=0-3).
#
# .device/ holds what the device's image (Python 3.12, torch 2.11) lacks, as
# `benchmarks/device_wheels.sh HAVE .device` makes it: site.tar.xz, the
# wheels of `pip install --dry-run --report` for ray[serve]==2.60.0, diffusers, open_clip_torch,
# simpy, highspy==1.16.0, typer==0.29.2 and click==8.5.1 at --python-version 3.12, less the
# packages the image has (device/KINDS.md), unzipped into one folder (ray/jars, ray/rllib and
# py-spy left out to fit the 64 MiB the call carries) and xz-compressed; and
# grpcio_reflection-1.84.0-py3-none-any.whl, since the image's grpcio is 1.84.
set -o pipefail
export PYTHONUNBUFFERED=1
t0=$(date +%s)
mkdir -p /tmp/site && tar -C /tmp/site -xJf .device/site.tar.xz || { echo "extract failed"; exit 3; }
rm -rf /tmp/site/grpc_reflection /tmp/site/grpcio_reflection-*.dist-info
python3 -m zipfile -e .device/grpcio_reflection-1.84.0-*.whl /tmp/site || exit 3
export PYTHONPATH=/tmp/site:$PWD
mkdir -p /tmp/bin
printf '#!/bin/bash\nexec python3 -c "import sys; from experiments.cli import main; sys.argv[0] = \\"t2isim\\"; main()" "$@"\n' > /tmp/bin/t2isim
chmod +x /tmp/bin/t2isim
export PATH=/tmp/bin:$PATH
echo "extracted in $(( $(date +%s) - t0 )) s"; nproc; python3 --version; lscpu | grep -i "model name"
python3 -c "import ray, ray.serve, diffusers, open_clip, simpy, highspy, typer, torch, pandas, numpy, experiments.cli, serving.validate, serving.diffusers_backend; print('imports ok: ray', ray.__version__, 'diffusers', diffusers.__version__, 'typer', typer.__version__, 'torch', torch.__version__, 'pandas', pandas.__version__, 'numpy', numpy.__version__)" || exit 4
t2isim --help > /dev/null || { echo "t2isim cli failed"; exit 5; }
# DEVICE_CORES: the cores the whole run is pinned to (taskset's list; default 0,1, the footprint
# here). 0-3 gives the 2 CPU replicas and the serving stack spare cores: the test of whether
# the offline profile meets the goal where the replicas do not share cores with the stack.
pin=""; command -v taskset > /dev/null && pin="taskset -c ${DEVICE_CORES:-0,1}"
echo "pin: ${pin:-none}"
head -1 /proc/stat
timeout 540 $pin python3 benchmarks/validation_report.py --run --only tiny-diffusers-static --tiny-rounds 8 --skip-after --dir /tmp/val --notes /tmp/none.md --out "$OUT/VALIDATION.md" "$@" 2>&1 | tee "$OUT/log"
rc=$?
python3 benchmarks/preemption_fit.py /tmp/val/tiny-diffusers-static --bundle /tmp/val/tiny-profile/bundle 2>&1 | tee -a "$OUT/log"
head -1 /proc/stat
echo "done rc=$rc after $(( $(date +%s) - t0 )) s"
tar -C /tmp -czf "$OUT/validation.tgz" val
exit $rc

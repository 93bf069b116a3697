#!/usr/bin/env bash
# `make run`: the whole platform on one machine with nothing installed but Python.
# Embedded defaults (core/embedded.py): a private PostgreSQL 18 with pgvector and a Redis,
# both from PyPI wheels, data under $DATA_DIR (./var). `python -m core.embedded run` owns
# their lifetime: it starts them, runs this script again with --serve, and stops them
# when the platform stops. DATABASE_URL / BROKER_URL, when set, replace them.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATA_DIR="${DATA_DIR:-$PWD/var}"
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" != "--serve" ]; then
    mkdir -p "$DATA_DIR"
    exec python -m core.embedded run -- "$0" --serve
fi
[ -s "$DATA_DIR/api-key" ] || python -c "import secrets; print('hk_' + secrets.token_urlsafe(32))" > "$DATA_DIR/api-key"
[ -s "$DATA_DIR/url-signing-secret" ] || python -c "import secrets; print(secrets.token_urlsafe(32))" > "$DATA_DIR/url-signing-secret"
[ -s "$DATA_DIR/flower-password" ] || python -c "import secrets; print(secrets.token_urlsafe(12))" > "$DATA_DIR/flower-password"
export API_BOOTSTRAP_KEY="${API_BOOTSTRAP_KEY:-$(cat "$DATA_DIR/api-key")}"
export URL_SIGNING_SECRET="${URL_SIGNING_SECRET:-$(cat "$DATA_DIR/url-signing-secret")}"
export FLOWER_BASIC_AUTH="${FLOWER_BASIC_AUTH:-admin:$(cat "$DATA_DIR/flower-password")}"
export DIAGNOSTICS="${DIAGNOSTICS:-1}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
export PORT="${PORT:-8000}"
# Upgrading from a release that kept its data in SQLite: copy it over once (migrates too).
if [ -f "$DATA_DIR/hark.db" ]; then
    echo "Found $DATA_DIR/hark.db (the SQLite database of an older Hark): importing it."
    flask --app app db import-sqlite "$DATA_DIR/hark.db" || {
        echo "The import failed; nothing was copied. Fix the cause above, then run" >&2
        echo "  python -m core.embedded run -- .venv/bin/flask --app app db import-sqlite $DATA_DIR/hark.db" >&2
        echo "or move $DATA_DIR/hark.db away to start without its data." >&2
        exit 1
    }
fi
flask --app app db upgrade
cat <<BANNER

  Hark is starting on http://127.0.0.1:${PORT}
  API key:  ${API_BOOTSTRAP_KEY}
  Flower:   http://127.0.0.1:${FLOWER_PORT:-5555}  (${FLOWER_BASIC_AUTH})

  Try:  curl -s -X POST http://127.0.0.1:${PORT}/diagnostics/sleep \\
          -H "x-api-key: ${API_BOOTSTRAP_KEY}" -H 'Content-Type: application/json' \\
          -d '{"seconds": 1}'

BANNER
# honcho gives each process its own PORT from the base: web (listed first) gets $PORT.
exec honcho start --port "$PORT" web worker events embed beat flower

#!/usr/bin/env bash
# `make run`: the whole platform on one machine with nothing installed but Python.
# Embedded defaults: SQLite in ./var and kombu's filesystem broker (no servers needed).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
[ -s var/api-key ] || .venv/bin/python -c "import secrets; print('hk_' + secrets.token_urlsafe(32))" > var/api-key
[ -s var/url-signing-secret ] || .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > var/url-signing-secret
[ -s var/flower-password ] || .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))" > var/flower-password
export API_BOOTSTRAP_KEY="${API_BOOTSTRAP_KEY:-$(cat var/api-key)}"
export URL_SIGNING_SECRET="${URL_SIGNING_SECRET:-$(cat var/url-signing-secret)}"
export FLOWER_BASIC_AUTH="${FLOWER_BASIC_AUTH:-admin:$(cat var/flower-password)}"
export DIAGNOSTICS="${DIAGNOSTICS:-1}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
export PORT="${PORT:-8000}"
export PATH="$PWD/.venv/bin:$PATH"
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
exec honcho start --port "$PORT" web worker events beat flower

#!/usr/bin/env bash
# System tools the test suite uses: ffmpeg (media), espeak-ng (speech clips),
# docker-compose v1 (validates docker-compose.yml without an engine), chromium (drives the
# web page; Playwright uses this browser, never one of its own). Debian/Ubuntu only.
# Extra Debian packages named as arguments are installed too (`make bench` adds wrk).
set -uo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v pg_isready >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
for extra in "$@"; do command -v "$extra" >/dev/null || need+=("$extra"); done
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]}" >&2
  fi
fi
exit 0

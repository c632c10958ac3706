#!/usr/bin/env bash
# The main job: set up, caption + embed + index a folder of photos into the
# embedded store, then run a search.
# Usage: scripts/run.sh [PHOTO_DIR...]      (default: ../shared/fixtures/images when present)
# Env:   BLIPC_CAPTION_MODEL  (default Salesforce/blip2-opt-2.7b, from the HF cache or pulled)
#        BLIPC_EMBED_MODEL    (default sentence-transformers/all-MiniLM-L12-v2)
#        BLIPC_STORE          (default: the store's documented default path)
#        BLIPC_QUERY          (default "woman playing with her dog on the beach")
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=build/tools
if [ $# -eq 0 ]; then
  if [ -d ../shared/fixtures/images ]; then set -- ../shared/fixtures/images
  else echo "usage: scripts/run.sh PHOTO_DIR..." >&2; exit 2; fi
fi
args=()
[ -n "${BLIPC_CAPTION_MODEL:-}" ] && args+=(--caption-model "$BLIPC_CAPTION_MODEL")
[ -n "${BLIPC_EMBED_MODEL:-}" ] && args+=(--embed-model "$BLIPC_EMBED_MODEL")
[ -n "${BLIPC_STORE:-}" ] && args+=(--store "$BLIPC_STORE")
if ! "$BIN/blipc-index" "${args[@]}" "$@"; then
  cat >&2 <<'MSG'

run.sh: indexing did not complete (see the message above).
To try the whole pipeline without the real checkpoints, use the tiny random-weight
fixture models (captions are then gibberish, but every stage runs):
  BLIPC_CAPTION_MODEL=../shared/fixtures/blip2-tiny BLIPC_EMBED_MODEL=../shared/fixtures/minilm-tiny scripts/run.sh
MSG
  exit 1
fi
sargs=()
[ -n "${BLIPC_EMBED_MODEL:-}" ] && sargs+=(--embed-model "$BLIPC_EMBED_MODEL")
[ -n "${BLIPC_STORE:-}" ] && sargs+=(--store "$BLIPC_STORE")
"$BIN/blipc-search" "${sargs[@]}" -k 5 "${BLIPC_QUERY:-woman playing with her dog on the beach}"

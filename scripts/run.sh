#!/usr/bin/env bash
# make run: initialise the state folder on first run, then serve.
set -euo pipefail
bin=${1:?usage: run.sh path/to/ringfence}
export RINGFENCE_HOME=${RINGFENCE_HOME:-$PWD/var}
if [ ! -f "$RINGFENCE_HOME/ringfence.db" ]; then
	"$bin" init
fi
exec "$bin" serve

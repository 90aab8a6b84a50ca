#!/usr/bin/env bash
# Runs one peer script with 2 threads (or PEER_THREADS) and prints its RESULT line as JSON.
#   peers/run.sh {torch,jax,keras}_{dense,conv}.py     [PEER_EPOCHS=N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$HOME/.cache/dae-peers}
script=${1:?usage: peers/run.sh SCRIPT.py}
py="$PEERS/${script%%_*}/bin/python"
env=${script%%_*}
[ -x "$py" ] || { echo "no $py: run $here/setup.sh$([ "$env" != jax ] && echo " $env")" >&2; exit 1; }
threads=${PEER_THREADS:-2}
cd "$here"
OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$py" "$script" | sed -n -e 'w /dev/stderr' -e 's/^RESULT //p'

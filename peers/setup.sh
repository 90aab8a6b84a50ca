#!/usr/bin/env bash
# Makes the Python environments of the peer frameworks, outside the repository, from the pinned
# requirements beside this script.
#   peers/setup.sh            JAX (CPU, about 300 MB, a minute or two)
#   peers/setup.sh torch      PyTorch too (its wheels bring CUDA libraries: about 5 GB, several minutes)
#   peers/setup.sh keras      Keras 3 too, on JAX (the reference notebook's framework; about 350 MB)
#   peers/setup.sh torch keras  both
# Environments go to $PEERS (default ~/.cache/dae-peers): $PEERS/jax, $PEERS/torch, $PEERS/keras.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-$HOME/.cache/dae-peers}
mkdir -p "$PEERS"
make() {  # name
  local name=$1
  if [ -x "$PEERS/$name/bin/python" ] && "$PEERS/$name/bin/python" -c "import $name" 2>/dev/null; then
    echo "$PEERS/$name: ready"; return
  fi
  python3 -m venv "$PEERS/$name"
  "$PEERS/$name/bin/pip" install -q -r "$here/requirements-$name.txt"
  echo "$PEERS/$name: installed $(tr '\n' ' ' < "$here/requirements-$name.txt")"
}
make jax
for extra in "$@"; do
  case $extra in
    torch|keras) make "$extra" ;;
    *) echo "usage: peers/setup.sh [torch] [keras]" >&2; exit 2 ;;
  esac
done

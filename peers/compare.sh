#!/usr/bin/env bash
# Ours beside the peers, one sitting: trains the same experiment with dae and with every peer
# framework whose environment peers/setup.sh made, then prints each one's median epoch over
# epochs 2..N (JAX's first epoch compiles), its validation loss, and how many times faster ours is.
#   peers/compare.sh [dense|conv] [EPOCHS]      defaults: dense 3
#   ISA=avx2 peers/compare.sh ...               every side limited to AVX2 and FMA, as on a CPU
#                                               without AVX-512 (ours DAE_KERNEL=avx2, PyTorch
#                                               ATEN_CPU_CAPABILITY and MKL, JAX XLA's max ISA)
# Takes about 30 s for dense at 3 epochs; conv at 2 epochs about 16 minutes (on a 2-core Zen 4,
# an epoch: PyTorch ~53 s, JAX ~171 s, Keras ~155 s). Needs ./data-fetch.sh's data/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-dense}
epochs=${2:-3}
case $arch in dense|conv) ;; *) echo "usage: peers/compare.sh [dense|conv] [EPOCHS]" >&2; exit 2 ;; esac
[ "$epochs" -ge 2 ] 2>/dev/null || { echo "EPOCHS must be 2 or more (epoch 1 is left out)" >&2; exit 2; }
[ -f "$root/data/train-images-idx3-ubyte.gz" ] || { echo "no data/: run ./data-fetch.sh first" >&2; exit 1; }
case ${ISA:-} in
  "") limit="" ;;
  avx2) limit=", limited to AVX2"
        export DAE_KERNEL=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2 ;;
  *) echo "ISA must be avx2 or unset, not '$ISA'" >&2; exit 2 ;;
esac
PEERS=${PEERS:-$HOME/.cache/dae-peers}
out="$root/target/compare"
mkdir -p "$out"
cd "$root"
cargo build --release --quiet
results="$out/$arch.jsonl"
: > "$results"
echo "${DAE_KERNEL:+DAE_KERNEL=$DAE_KERNEL }dae --arch $arch --epochs $epochs --threads 2" >&2
rm -rf "$out/dae-$arch" "$out/dae-$arch".*  # the last comparison's run, not set aside again
target/release/dae --arch "$arch" --epochs "$epochs" --threads 2 --out "$out/dae-$arch" >&2
python3 - "$out/dae-$arch/metrics.json" >> "$results" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
h = m["history"]
print(json.dumps({"framework": "dae", "version": "this checkout", "epoch_s": [e["seconds"] for e in h],
                  "val_loss": [e["val_loss"] for e in h]}))
PY
for framework in torch jax keras; do
  [ -f "peers/${framework}_$arch.py" ] || continue
  if [ -x "$PEERS/$framework/bin/python" ]; then
    PEER_EPOCHS=$epochs PEER_THREADS=2 peers/run.sh "${framework}_$arch.py" >> "$results"
  else
    echo "no $framework environment: peers/setup.sh$([ "$framework" != jax ] && echo " $framework") makes it" >&2
  fi
done
python3 - "$results" "$arch" "$epochs" "$limit" <<'PY'
import json, platform, statistics, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
arch, epochs, limit = sys.argv[2], int(sys.argv[3]), sys.argv[4]
cpu = [l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
       if l.startswith(("Model name", "Model:"))]
print(f"{arch}, {epochs} epochs, 2 threads{limit}, on {' / model '.join(cpu)}; median of epochs 2..{epochs}")
ours = statistics.median(rows[0]["epoch_s"][1:])
print(f"{'run':<16} {'median epoch':>12} {'val loss':>9}  ours is")
for r in rows:
    median = statistics.median(r["epoch_s"][1:])
    ratio = "" if r["framework"] == "dae" else f"{median / ours:.2f}x faster"
    name = "dae" if r["framework"] == "dae" else r["version"].split(" / ")[0].split("+")[0]
    print(f"{name:<16} {median:>10.3f} s {r['val_loss'][-1]:>9.4f}  {ratio}")
PY

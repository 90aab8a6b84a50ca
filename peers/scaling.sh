#!/usr/bin/env bash
# How ours uses the cores of this machine, one sitting: the dense model's median epoch on one
# thread and on two, each as a ratio to the floor `--profile` prints (its products at the
# kernel's measured rate); one thread held to each of the first two cores in turn (a VM's vCPUs
# need not run at one speed), and the best two threads could do if each core kept that speed;
# two threads beside a `nice -n 19` busy loop on each core (what a laptop's background work looks
# like); the peak resident memory of a two-thread run; naming the CPU. The runs alternate (one thread, two, one on
# each core, two beside the loops, and again), so a neighbour's load falls on all alike.
#   peers/scaling.sh [EPOCHS] [ROUNDS]      defaults: 3 epochs, 3 rounds
# Takes about two minutes on a 2-core Zen 4. Needs ./data-fetch.sh's data/ and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
epochs=${1:-3}
rounds=${2:-3}
[ "$epochs" -ge 1 ] 2>/dev/null || { echo "EPOCHS must be 1 or more, not '$epochs'" >&2; exit 2; }
[ "$rounds" -ge 1 ] 2>/dev/null || { echo "ROUNDS must be 1 or more, not '$rounds'" >&2; exit 2; }
[ -f "$root/data/train-images-idx3-ubyte.gz" ] || { echo "no data/: run ./data-fetch.sh first" >&2; exit 1; }
cd "$root"
cargo build --release --quiet
out="$root/target/scaling"
mkdir -p "$out"
results="$out/runs.txt"
: > "$results"

loops=()
stop_loops() {
  for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null || true; done
  loops=()
}
trap stop_loops EXIT

# One training run on $1 threads, labelled $2, after the command prefix $3 (none, or taskset's):
# appends "label median_epoch floor_ratio peak_kib".
run() {
  rm -rf "$out/run" "$out/run".*  # the last run's, not set aside again
  # shellcheck disable=SC2086  # the prefix is words, split on purpose
  python3 - "$2" ${3:-} target/release/dae --epochs "$epochs" --threads "$1" --profile --out "$out/run" \
    >> "$results" <<'PY'
import re, resource, subprocess, sys
done = subprocess.run(sys.argv[2:], capture_output=True, text=True)
if done.returncode != 0:
    sys.exit(f"{' '.join(sys.argv[2:])} failed:\n{done.stderr}")
floor = re.search(r"the median epoch, ([\d.]+) s, is ([\d.]+)× that floor", done.stdout)
if floor is None:
    sys.exit("no floor line in --profile's output")
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(sys.argv[1], floor.group(1), floor.group(2), peak)
PY
}

for round in $(seq "$rounds"); do
  echo "round $round of $rounds" >&2
  run 1 one
  run 2 two
  if [ "$(nproc)" -ge 2 ]; then  # the two cores a 2-thread run gets on a 2-core machine
    run 1 core0 "taskset -c 0"
    run 1 core1 "taskset -c 1"
  fi
  for core in $(seq 0 $(($(nproc) - 1))); do
    taskset -c "$core" nice -n 19 sh -c 'while :; do :; done' &
    loops+=($!)
  done
  run 2 busy
  stop_loops
done

python3 - "$results" "$epochs" "$rounds" <<'PY'
import statistics, subprocess, sys
runs = [line.split() for line in open(sys.argv[1]) if line.strip()]
epochs, rounds = sys.argv[2], sys.argv[3]
def median(label, field):
    return statistics.median(float(r[field]) for r in runs if r[0] == label)
cpu = [l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
       if l.startswith(("Model name", "Model:"))]
print(f"dense, {epochs} epoch{'' if epochs == '1' else 's'}, on {' / model '.join(cpu)}; medians of {rounds} alternated runs each")
print(f"{'run':<30} {'median epoch':>12} {'floor':>6}")
one, two, busy = (median(label, 1) for label in ("one", "two", "busy"))
# Beside the loops the kernel's rate, and so the floor, is measured low: no ratio is shown.
rows = [("1 thread", "one", ""), ("2 threads", "two", f"{one / two:.2f}x one thread"),
        ("2 threads, a busy loop a core", "busy", f"{busy / two:.2f}x the time alone")]
for name, label, note in rows:
    floor = "" if label == "busy" else f"{median(label, 2):.2f}x"
    print(f"{name:<30} {median(label, 1):>10.3f} s {floor:>6}  {note}")
cores = sorted({r[0] for r in runs if r[0].startswith("core")}, key=lambda c: int(c[4:]))
alone = [median(c, 1) for c in cores]
if len(alone) >= 2:
    # Two cores at their own speeds, the work shared so that both finish together.
    best = 1 / (1 / alone[0] + 1 / alone[1])
    print(f"1 thread on each core: {' / '.join(f'{t:.3f}' for t in alone)} s; two threads at those speeds "
          f"at best {best:.3f} s, {min(alone) / best:.2f}x the faster core; the run above is {best / two:.2f}x that best")
print(f"peak resident memory, 2 threads: {median('two', 3) / 1024:.0f} MiB")
PY

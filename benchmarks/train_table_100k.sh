#!/usr/bin/env bash
# The tagging tables of issue 21 in one run, for a lent GPU (or a long CPU run):
#   1. ParticleNet and ParT on the existing 100,000-jet, 30-particle set (same split and
#      procedure as the six models of RESULTS.md), compared with the runs already there;
#   2. a 100-particle set of 100,000 jets (same generator seed) and, on it, the DNN, JEDI-net
#      (its default at 100 particles is the paper's 100-particle setting 30/10/10 ELU),
#      JEDI-net ΣO, ParticleNet and ParT;
#   3. the throughput benchmark at 30 and 100 particles.
# Usage: bash benchmarks/train_table_100k.sh [DEVICE] [THREADS]     (DEVICE: cuda or cpu)
# Everything lands under runs100k/, runs100k-100p/, cmp100k*/ and bench_taggers.json;
# re-running skips finished runs and resumes killed ones (--resume).
set -euo pipefail
DEVICE=${1:-cuda}
THREADS=${2:-1}
D30=data/jets30-100k
D100=data/jets100-100k
COMMON=(--epochs 40 --patience 8 --device "$DEVICE" --threads "$THREADS")

[ -f "$D30/generation.json" ] || jetlab data generate --jets-per-class 20000 --particles 30 --seed 11 --out "$D30"
[ -f "$D100/generation.json" ] || jetlab data generate --jets-per-class 20000 --particles 100 --seed 11 --out "$D100"

train() {  # train MODEL DATA PARTICLES OUT [flags...]
  local model=$1 data=$2 particles=$3 out=$4; shift 4
  if [ -f "$out/metrics.json" ]; then echo "$out: done"; return; fi
  local resume=(); [ -f "$out/checkpoint.pt" ] && resume=(--resume)
  jetlab tagger train --model "$model" --data "$data" --particles "$particles" "${COMMON[@]}" --out "$out" \
      "${resume[@]}" "$@"
}

# 1. 30 particles: the two new models next to the six of RESULTS.md (runs100k/ holds those)
for m in particlenet part; do train $m "$D30" 30 runs100k/$m; done
jetlab tagger compare runs100k/{dnn,jedinet,jedinet-sumo,garnet,gru,cnn-linear,particlenet,part} --out cmp100k-2020s \
  || jetlab tagger compare runs100k/{particlenet,part} --out cmp100k-2020s

# 2. 100 particles
for m in dnn jedinet jedinet-sumo particlenet part; do train $m "$D100" 100 runs100k-100p/$m; done
jetlab tagger compare runs100k-100p/{dnn,jedinet,jedinet-sumo,particlenet,part} --out cmp100k-100p

# 3. throughput (CPU, one thread; the GPU figures need --device support in the script: CPU only)
python benchmarks/bench_taggers.py --particles 30,100 --repeats 5 --out bench_taggers.json

#!/bin/bash
# Trains the fastsim result runs in parallel on one GPU; run from the repository root.
# runs/gpu (git-ignored, carried to the GPU machine) held: configs/ (= this folder), data/ (copies of
# /work/data/fastsim/jets30_{g,t}.h5) and cache/mnist/mnist_superpixels.h5 (the jetlab MNIST cache).
set -u
export PYTHONPATH=$PWD/src JETLAB_CACHE=$PWD/runs/gpu/cache JETLAB_NO_PROGRESS=1 OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
mkdir -p /work/data/fastsim /work/runs/fastsim
cp runs/gpu/data/*.h5 /work/data/fastsim/
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, jetlab.training.fastsim; print(torch.__version__, torch.cuda.is_available())" || exit 1
C=runs/gpu/configs
train() { name=$1; shift; python3 -m jetlab fastsim train --device cuda --seed 1 --out /work/runs/fastsim/$name "$@" > /work/runs/fastsim/$name.log 2>&1; echo "$name exit $?"; }
for c in g t; do
  train jets_${c}_gan --config $C/jets_gan.yaml --data /work/data/fastsim/jets30_$c.h5 --jet-class $c &
  train jets_${c}_gan_r1 --config $C/jets_gan_r1.yaml --data /work/data/fastsim/jets30_$c.h5 --jet-class $c &
done
train mnist_superpixels_gan --config $C/mnist_gan.yaml &
train mnist_superpixels_vae --config $C/mnist_vae.yaml &
wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader
for f in /work/runs/fastsim/*.log; do echo "== $f"; tail -n 4 $f; done
tar czf $OUT/fastsim_runs.tgz -C /work/runs fastsim
ls -la $OUT

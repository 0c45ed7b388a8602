#!/usr/bin/env bash
# The GPU checks of issues 21 and 24 as one prepared run (about 9 minutes of one H200):
#   1. fit_scale.py: the ensemble fit's epoch at 5k / 65k / 125k env rows, 4 seeds, by
#      sgd_block (issue 24: "the ensemble fit at 125k rows is launch-bound");
#   2. mbpo_speed.py: MBPO on Pendulum at mbrl-lib's work, 1 seed against 64 and 8 seeds under
#      one vmap (issue 24: "64 seeds in at most 3x one seed's time");
#   3. mbpo_profile.py on gymnasium:Hopper-v5: the host path with the learner on the GPU and
#      MuJoCo on the host, its parts timed and the paper's 125k-step run projected (issue 21);
#   4. fit_scale.py again under XLA's command buffers (CUDA graphs over loops).
# Each part has its own time limit and log under $OUT. Packages the device image lacks travel
# as wheels in .whl/ (the device README's recipe: gymnax, distrax, tfp-nightly, dm-tree, gast,
# decorator, gymnasium, farama-notifications, mujoco, mujoco-core, glfw, pyopengl for cp312).
# The *_ARGS variables shrink the parts for a smoke run on the CPU.
set -u
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
PY=${PY:-python3}
if [ -d .whl ] && [ -z "${NO_WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv 2>/dev/null
$PY -c "import jax, gymnax, distrax, gymnasium, mujoco; print('jax', jax.__version__, jax.devices())"

part() {  # part NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s, $(date +%T))"
    timeout "$limit" "$@" 2>&1 | grep -v -E "^(W|I)[0-9]{4} " | tee "$OUT/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]} ($(date +%T))"
}

part fit_scale 100 $PY benchmarks/fit_scale.py ${FIT_ARGS:---seeds 4 --blocks 1,16,64}
part mbpo_speed 210 $PY benchmarks/mbpo_speed.py \
    ${SPEED_ARGS:---steps 200 --vmap-seeds 64,8 --vmap-steps 200}
part hopper_profile 170 $PY benchmarks/mbpo_profile.py --env gymnasium:Hopper-v5 \
    ${PROFILE_ARGS:---seeds 4 --sizes 5000,65000,125000 --repeats 2}
part fit_scale_command_buffers 60 env \
    XLA_FLAGS=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL \
    $PY benchmarks/fit_scale.py ${FIT_ARGS:---seeds 4 --blocks 1,16}

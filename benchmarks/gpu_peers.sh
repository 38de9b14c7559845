#!/usr/bin/env bash
# pytabkit's RealMLP and TabM on a GPU: the accuracy suite's scores for the
# (dataset, seed) cells that were too slow to fit on the 2-core CPU machine.
# One process per (dataset, model), all at once on the one GPU; each appends a
# JSON line per fit to RESULTS (marked "device": "cuda": scores only, the fit
# times are not CPU times). telco's TabM refits seed 0, fitted on the CPU
# before, into RESULTS.check, to compare the GPU's score with the CPU's.
#
# usage: benchmarks/gpu_peers.sh DATA_DIR RESULTS SECONDS_PER_PROCESS
set -u
data=$1 results=$2 limit=$3
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
logs=$(mktemp -d)
fit() {  # results-file dataset model seeds...
    local file=$1 dataset=$2 model=$3; shift 3
    timeout "$limit" python3 benchmarks/accuracy.py --data-dir "$data" --results "$file" \
        --peer-device cuda --datasets "$dataset" --models "$model" --seeds "$@" \
        >"$logs/$dataset-$model.log" 2>&1 &
}
for model in realmlp tabm; do
    for dataset in adult diamonds; do fit "$results" $dataset $model 0 1 2; done
    for dataset in bank_marketing credit_default_taiwan bikeshare_dc ames_housing loan_grade; do
        fit "$results" $dataset $model 1 2
    done
done
fit "$results" california_housing realmlp 1 2
fit "$results" california_housing tabm 0 1 2
fit "$results" telco_churn realmlp 1 2
fit "$results.check" telco_churn tabm 0 1 2
wait
tail -n 3 "$logs"/*.log

#!/bin/sh
# Copy the length campaign's grid record, unfinished trials' states and metric rows here (README.md). Run from
# the repository root. States before rows: a trial writes a report's rows before its state, so rows copied after
# a state always reach that state's step.
set -eu
src=${1:-campaigns/stacked-length}
here=$(dirname "$0")
rm -rf "$here/parquet" "$here/trial_state"
mkdir -p "$here/parquet" "$here/trial_state"
cp "$src/sweep.json" "$here/"
.venv/bin/python - "$src" "$here" <<'PY'
import shutil, sys
from trainables.results import final_rows, load_metrics
src, here = sys.argv[1:]
last = final_rows(load_metrics(src), include_ended_early=True)
for trial_id in last.loc[last["status"] != "finished", "trial_id"]:
    shutil.copy(f"{src}/trial_state/{trial_id}.pt", f"{here}/trial_state/")
    print("kept the state of", trial_id)
PY
cp -r "$src/parquet/metrics" "$here/parquet/"
du -sh "$here"

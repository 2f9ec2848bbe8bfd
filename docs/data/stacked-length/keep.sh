#!/bin/sh
# Copy the length campaign's grid record, metric rows and unfinished trials' states here (README.md).
set -eu
src=${1:-campaigns/stacked-length}
here=$(dirname "$0")
rm -rf "$here/parquet" "$here/trial_state"
mkdir -p "$here/parquet" "$here/trial_state"
cp "$src/sweep.json" "$here/"
cp -r "$src/parquet/metrics" "$here/parquet/"
.venv/bin/python - "$src" "$here" <<'PY'
import shutil, sys
from trainables.results import final_rows, load_metrics
src, here = sys.argv[1:]
last = final_rows(load_metrics(src), include_ended_early=True)
for trial_id in last.loc[last["status"] != "finished", "trial_id"]:
    shutil.copy(f"{src}/trial_state/{trial_id}.pt", f"{here}/trial_state/")
    print("kept the state of", trial_id)
PY
du -sh "$here"

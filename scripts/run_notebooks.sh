#!/usr/bin/env bash
# Execute every tutorial (notebooks/NN_*.py, jupytext "percent" files) as a notebook, as CI does.
#
#   pip install ".[notebooks]" && scripts/run_notebooks.sh [extra pytest options]
#
# Each .py file is converted to an .ipynb in a scratch folder (set NOTEBOOKS_OUT to keep them) and
# run with `pytest --nbmake`; the slowest notebooks are listed at the end with their run times.
set -euo pipefail
cd "$(dirname "$0")/.."

# The kernel runs in the scratch folder: make it import this checkout's scarlet_like.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

out="${NOTEBOOKS_OUT:-$(mktemp -d)}"
mkdir -p "$out"
for source in notebooks/[0-9][0-9]_*.py; do
    jupytext --quiet --to ipynb --output "$out/$(basename "${source%.py}").ipynb" "$source"
done
pytest --nbmake --nbmake-timeout=600 "$out" -p no:cacheprovider -o addopts= --durations=0 "$@"

#!/usr/bin/env bash
# A throwaway virtualenv with retentioneering for bench_journeys.py's `retentioneering`
# implementation (it pins its own pandas/numpy, so it cannot live in the project's .venv).
#
#   bash benchmarks/retentioneering_env.sh [VENV]      # default /tmp/crm_rete_venv
#
# Prints the venv's python on the last line. Re-running with an existing, working venv is a
# no-op. Remove it with `rm -rf VENV`.
set -euo pipefail
VENV="${1:-/tmp/crm_rete_venv}"
VERSION="${RETENTIONEERING_VERSION:-5.2.4}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import retentioneering" 2>/dev/null; then
    echo "$VENV/bin/python"
    exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# pyarrow: to read the benchmark's Parquet file (retentioneering itself reads pandas frames)
nice -n 19 "$VENV/bin/python" -m pip install --quiet "retentioneering==$VERSION" pyarrow
"$VENV/bin/python" -c "import retentioneering, pandas, numpy; print('retentioneering', retentioneering.__version__, 'pandas', pandas.__version__, 'numpy', numpy.__version__)" >&2
echo "$VENV/bin/python"

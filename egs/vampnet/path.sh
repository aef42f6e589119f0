# Environment for the recipe: the repository's virtual environment (made by tools/setup.sh).
FUNCODEC_ROOT=${FUNCODEC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export FUNCODEC_ROOT
if [ -f "$FUNCODEC_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$FUNCODEC_ROOT/.venv/bin/activate"
fi
export PYTHONUNBUFFERED=1

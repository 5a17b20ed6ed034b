# shellcheck shell=bash
# Shared by scripts/test and scripts/dev (source it; it defines functions and changes nothing).
#
# ensure_venv: makes sure <repo>/.venv exists and holds exactly what requirements-dev.lock
# pins (hashes checked), with the package itself installed in editable mode on top. The
# install runs again only when pyproject.toml or the lock differ from those recorded at the
# last successful install (a stamp file inside .venv), so the usual run costs nothing.
# Set PYTHON to choose the interpreter for a new venv (default: python3).

_venv_say() {
    printf '==> %s\n' "$*" >&2
}

# The repository root: the parent of the directory holding this file.
RELEASEBOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RELEASEBOT_VENV="$RELEASEBOT_ROOT/.venv"
RELEASEBOT_STAMP="$RELEASEBOT_VENV/.releasebot-installed"

# A venv copied or moved from elsewhere keeps scripts whose #! line points at the old place.
_venv_is_usable() {
    local shebang interpreter
    [ -x "$RELEASEBOT_VENV/bin/python" ] || return 1
    "$RELEASEBOT_VENV/bin/python" -c 'import sys' 2>/dev/null || return 1
    [ -f "$RELEASEBOT_VENV/bin/pip" ] || return 1
    shebang="$(head -n 1 "$RELEASEBOT_VENV/bin/pip")"
    interpreter="${shebang#\#!}"
    [ "$(realpath -m "$(dirname "$interpreter")")" = "$(realpath -m "$RELEASEBOT_VENV/bin")" ]
}

_venv_create() {
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        _venv_say "ERROR: $python not found; install Python 3.11 or newer (or set PYTHON)"
        return 1
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        _venv_say "ERROR: $("$python" --version 2>&1) is too old; releasebot needs Python 3.11+"
        return 1
    fi
    _venv_say "creating $RELEASEBOT_VENV with $("$python" --version 2>&1)"
    rm -rf "$RELEASEBOT_VENV"
    "$python" -m venv "$RELEASEBOT_VENV"
}

# The fingerprint of what the venv was installed from.
_venv_fingerprint() {
    "$RELEASEBOT_VENV/bin/python" - "$RELEASEBOT_ROOT/pyproject.toml" \
        "$RELEASEBOT_ROOT/requirements-dev.lock" <<'PY'
import hashlib
import sys

digest = hashlib.sha256()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        digest.update(f.read())
print(digest.hexdigest())
PY
}

ensure_venv() {
    if ! _venv_is_usable; then
        if [ -e "$RELEASEBOT_VENV" ]; then
            _venv_say "$RELEASEBOT_VENV is broken or was moved; recreating it"
        fi
        _venv_create || return 1
    fi
    local want have=""
    want="$(_venv_fingerprint)"
    [ -f "$RELEASEBOT_STAMP" ] && have="$(cat "$RELEASEBOT_STAMP")"
    if [ "$want" != "$have" ]; then
        _venv_say "installing requirements-dev.lock and releasebot (lock changed or first run)"
        (cd "$RELEASEBOT_ROOT" && "$RELEASEBOT_VENV/bin/python" -m pip install \
            --disable-pip-version-check --quiet --require-hashes -r requirements-dev.lock) || {
            _venv_say "ERROR: pip install --require-hashes -r requirements-dev.lock failed (see above)"
            return 1
        }
        (cd "$RELEASEBOT_ROOT" && "$RELEASEBOT_VENV/bin/python" -m pip install \
            --disable-pip-version-check --quiet --no-deps --no-build-isolation -e .) || {
            _venv_say "ERROR: pip install --no-deps -e . failed (see above)"
            return 1
        }
        printf '%s\n' "$want" >"$RELEASEBOT_STAMP"
    fi
}

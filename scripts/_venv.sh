# Shared by scripts/run and scripts/test: make .venv and install Herald into it.
# Usage: source scripts/_venv.sh; ensure_venv "EXTRAS" (e.g. "" or "test")
# Reinstalls only when pyproject.toml (or plugin/pyproject.toml) changed since the last install.

ensure_venv() {
  local extras="$1"
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local py="${HERALD_PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Herald needs Python 3.11 or newer as '$py' (set HERALD_PYTHON to another interpreter)." >&2
    exit 1
  fi
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "Creating virtualenv in $root/.venv" >&2
    if ! "$py" -m venv "$root/.venv"; then
      echo "Could not create a virtualenv: on Debian/Ubuntu run 'sudo apt-get install python3-venv'." >&2
      exit 1
    fi
    "$root/.venv/bin/python" -m pip install --quiet --upgrade pip
  fi
  local spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  # The tests also need the OctoPrint plugin, its own distribution, installed beside Herald.
  local plugin_spec=()
  [ "$extras" = "test" ] && plugin_spec=(-e "$root/plugin")
  local stamp="$root/.venv/.herald-installed-$extras"
  local sums
  sums="$( { cat "$root/pyproject.toml" "$root/plugin/pyproject.toml" 2>/dev/null || true; } | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sums" ]; then
    echo "Installing Herald${extras:+ with [$extras]} into .venv" >&2
    "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" "${plugin_spec[@]}" 2>&1 \
      | grep -v "^WARNING: Location" >&2 || true
    "$root/.venv/bin/python" -c "import appliance" || { echo "Installing Herald failed." >&2; exit 1; }
    if [ "$extras" = "test" ]; then
      "$root/.venv/bin/python" -c "import octoprint_herald" || { echo "Installing the plugin failed." >&2; exit 1; }
    fi
    echo "$sums" > "$stamp"
  fi
}

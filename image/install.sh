#!/usr/bin/env bash
# Install or upgrade Herald on Debian 12 (bookworm) or Raspberry Pi OS (bookworm, arm64),
# from the checkout (or unpacked release tarball) this script sits in.
#
#   sudo image/install.sh                              # Herald on http://<this machine>:8080
#   sudo image/install.sh --caddy herald.example.com   # plus Caddy serving HTTPS on 443
#
# What it does: installs Debian's python3 and python3-venv (and caddy when asked), creates
# the system user "herald", installs Herald into a virtualenv under /opt/herald, keeps data
# in /var/lib/herald, writes /etc/herald/herald.env once (your edits are kept), installs
# the hardened systemd unit herald.service and the `herald` command in /usr/local/bin,
# then enables and (re)starts the service. Running it again upgrades Herald in place;
# the data directory and the settings file are left as they are.
set -euo pipefail

PREFIX=/opt/herald
DATA_DIR=/var/lib/herald
CONF_DIR=/etc/herald
ENV_FILE=$CONF_DIR/herald.env
UNIT_FILE=/etc/systemd/system/herald.service
SERVICE_USER=herald
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

domain=""
start=1
usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo "Options: --caddy DOMAIN   also install Caddy and serve https://DOMAIN (ports 80 and 443)"
    echo "         --no-start       install, but do not (re)start the service"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --caddy) domain="${2:?--caddy needs a domain name}"; shift 2 ;;
        --caddy=*) domain="${1#--caddy=}"; shift ;;
        --no-start) start=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run it as root: sudo $0 $*"
[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/appliance" ] \
    || die "$SRC does not look like a Herald checkout (no pyproject.toml and appliance/)"
if [ -r /etc/os-release ]; then
    # shellcheck source=/dev/null
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" != bookworm ]; then
        echo "install.sh: made for Debian 12 (bookworm) and Raspberry Pi OS bookworm;" \
             "this is ${PRETTY_NAME:-unknown}. Going on anyway." >&2
    fi
fi

# --- system packages ---------------------------------------------------------------------
packages=(python3 python3-venv)
[ -n "$domain" ] && packages+=(caddy)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "Installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Herald needs Python 3.11 or newer; $(python3 --version) is installed"

# --- user and directories ----------------------------------------------------------------
if ! getent passwd "$SERVICE_USER" >/dev/null; then
    say "Creating system user $SERVICE_USER"
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR/backups"
install -d -m 0755 "$CONF_DIR"

# --- Herald in its virtualenv ------------------------------------------------------------
venv_python="$PREFIX/bin/python"
if [ -x "$venv_python" ] && [ "$("$venv_python" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null)" \
        != "$(python3 -c 'import sys; print(sys.version_info[:2])')" ]; then
    say "Python changed since the last install: making the virtualenv anew"
    rm -rf "$PREFIX"
fi
if [ ! -x "$venv_python" ]; then
    say "Creating the virtualenv $PREFIX"
    python3 -m venv "$PREFIX"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build from a copy, so the checkout gets no root-owned build files.
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./data --exclude=./build \
    --exclude=./dist --exclude='*.egg-info' --exclude=__pycache__ --exclude=./test-artifacts \
    --exclude=node_modules -cf - . | tar -C "$work" -xf - --no-same-owner
mkdir "$work/.wheel"
say "Building Herald from $SRC"
"$PREFIX/bin/pip" wheel --quiet --disable-pip-version-check --no-deps -w "$work/.wheel" "$work"
wheel=$(ls "$work"/.wheel/herald-*.whl)
say "Installing $(basename "$wheel") and its dependencies into $PREFIX"
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check --upgrade "$wheel"
# The same version number again (a rebuilt checkout) is still a new build: replace it.
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
"$PREFIX/bin/herald" --version

# --- settings, unit, command ---------------------------------------------------------------
# Files a person may edit (herald.env, Caddy's site) are written once. install.sh records
# what it wrote in $CHECKSUMS; a later run changes such a file only while it is still
# byte for byte what install.sh wrote, and otherwise leaves it alone and says what to change.
CHECKSUMS=$CONF_DIR/installed.sha256
recorded() {  # recorded FILE: FILE is as install.sh last wrote it
    [ -f "$CHECKSUMS" ] && [ -f "$1" ] \
        && grep -F "  $1" "$CHECKSUMS" | sha256sum --check --status 2>/dev/null
}
record() {  # record FILE: remember FILE's contents as install.sh's own
    touch "$CHECKSUMS"
    grep -v -F "  $1" "$CHECKSUMS" > "$CHECKSUMS.new" || true
    sha256sum "$1" >> "$CHECKSUMS.new"
    mv "$CHECKSUMS.new" "$CHECKSUMS"
}
set_env() {  # set_env KEY VALUE: replace KEY's line in the settings file, or add one
    local key=$1 value=$2
    if grep -qE "^#?$key=" "$ENV_FILE"; then
        sed -i -E "s|^#?$key=.*|$key=$value|" "$ENV_FILE"
    else
        printf '%s=%s\n' "$key" "$value" >> "$ENV_FILE"
    fi
}
env_value() {  # env_value KEY: KEY's value in the settings file ('' when unset)
    sed -n -E "s/^$1=(.*)$/\1/p" "$ENV_FILE" | tail -n 1
}
wanted_env=()  # KEY=VALUE lines this run would set
if [ -n "$domain" ]; then
    wanted_env=("HERALD_PUBLIC_URL=https://$domain" "HERALD_TRUSTED_PROXIES=127.0.0.1,::1"
                "HERALD_HOST=127.0.0.1")
fi
if [ ! -f "$ENV_FILE" ]; then
    say "Writing $ENV_FILE"
    install -m 0640 -o root -g "$SERVICE_USER" "$SRC/image/herald.env" "$ENV_FILE"
    if [ -z "$domain" ]; then
        # No HTTPS proxy: serve the LAN directly, and build links (the setup link in the
        # log, device linking) from this machine's address. Change both in the file.
        address=$(hostname -I 2>/dev/null | awk '{print $1}')
        case "$address" in *:*) address="[$address]" ;; esac  # IPv6
        wanted_env=(HERALD_HOST=0.0.0.0 "HERALD_PUBLIC_URL=http://${address:-$(hostname)}:8080")
    fi
    for line in "${wanted_env[@]}"; do set_env "${line%%=*}" "${line#*=}"; done
    record "$ENV_FILE"
elif [ ${#wanted_env[@]} -gt 0 ]; then
    differ=()
    for line in "${wanted_env[@]}"; do
        [ "$(env_value "${line%%=*}")" = "${line#*=}" ] || differ+=("$line")
    done
    if [ ${#differ[@]} -eq 0 ]; then
        say "Keeping $ENV_FILE as it is (it has the settings for https://$domain)"
    elif recorded "$ENV_FILE"; then
        say "Setting ${differ[*]%%=*} in $ENV_FILE (unchanged since install.sh wrote it)"
        for line in "${differ[@]}"; do set_env "${line%%=*}" "${line#*=}"; done
        record "$ENV_FILE"
    else
        say "Keeping $ENV_FILE as it is: you edited it. For https://$domain it needs:"
        printf '      %s\n' "${differ[@]}"
        echo "    (edit the file, then: sudo systemctl restart herald)"
    fi
else
    say "Keeping $ENV_FILE as it is"
fi
install -m 0644 "$SRC/image/herald.service" "$UNIT_FILE"
install -m 0755 "$SRC/image/herald-cli.sh" /usr/local/bin/herald

# --- Caddy for HTTPS (optional) ----------------------------------------------------------
# Herald's site lives in its own file, /etc/caddy/herald.caddy, which the Caddyfile
# imports: a Caddyfile serving other sites keeps them (one import line is added, after a
# backup), and an edited herald.caddy or Caddyfile is never overwritten.
caddy_reload=0
if [ -n "$domain" ]; then
    caddyfile=/etc/caddy/Caddyfile
    site=/etc/caddy/herald.caddy
    port=$(env_value HERALD_PORT)
    install -d -m 0755 /etc/caddy
    sed -e "s|{\$HERALD_DOMAIN}|$domain|" -e "s|{\$HERALD_UPSTREAM:127.0.0.1:8080}|127.0.0.1:${port:-8080}|" \
        "$SRC/image/Caddyfile" > "$work/herald.caddy"
    if [ -f "$site" ] && cmp -s "$site" "$work/herald.caddy"; then
        say "Keeping $site (it serves https://$domain already)"
    elif [ ! -f "$site" ] || recorded "$site"; then
        say "Writing $site for https://$domain"
        install -m 0644 "$work/herald.caddy" "$site"
        record "$site"
        caddy_reload=1
    else
        install -m 0644 "$work/herald.caddy" "$site.new"
        say "Keeping $site as it is: you edited it. This release's version is $site.new"
    fi
    # Debian's caddy package ships a placeholder Caddyfile (a static page on :80).
    stock=$(dpkg-query -W -f='${Conffiles}\n' caddy 2>/dev/null | awk -v f="$caddyfile" '$1 == f {print $2}')
    if [ -f "$caddyfile" ] && grep -qE "^[[:space:]]*import[[:space:]]+(/etc/caddy/)?herald\.caddy" "$caddyfile"; then
        : # it imports Herald's site already
    elif [ -f "$caddyfile" ] && grep -q "reverse_proxy 127.0.0.1:${port:-8080}" "$caddyfile"; then
        say "Keeping $caddyfile as it is: it serves Herald already (an earlier install wrote it)"
    elif [ ! -f "$caddyfile" ] || [ "$(md5sum < "$caddyfile" | cut -d' ' -f1)" = "$stock" ]; then
        [ -f "$caddyfile" ] && cp -p "$caddyfile" "$caddyfile.before-herald"
        say "Writing $caddyfile (it imports $site)"
        printf '# Caddy on this machine. Herald'"'"'s site is in herald.caddy; add your own sites below.\nimport %s\n' \
            "$site" > "$caddyfile"
        caddy_reload=1
    else
        backup="$caddyfile.before-herald.$(date +%Y%m%d%H%M%S)"
        cp -p "$caddyfile" "$backup"
        say "Adding 'import $site' to $caddyfile (your sites stay as they are; backup: $backup)"
        printf '\n# Herald (added by image/install.sh)\nimport %s\n' "$site" >> "$caddyfile"
        caddy_reload=1
    fi
fi

# --- systemd -----------------------------------------------------------------------------
port=$(env_value HERALD_PORT)
port=${port:-8080}
healthy() {  # healthy PORT: Herald answers /healthz on loopback
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$1/healthz', timeout=2)" 2>/dev/null
}
if command -v systemctl >/dev/null; then
    systemctl enable herald.service >/dev/null 2>&1 || systemctl enable herald.service
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$start" = 1 ]; then
        say "Restarting herald.service"
        systemctl restart herald.service
        if [ "$caddy_reload" = 1 ]; then systemctl reload-or-restart caddy.service; fi
        for _ in $(seq 1 60); do
            if healthy "$port"; then
                say "Herald answers on http://127.0.0.1:$port/healthz"
                break
            fi
            sleep 1
        done
        systemctl is-active --quiet herald.service \
            || die "herald.service is not running: see journalctl -u herald"
    fi
    setup_hint="the one-time setup link that \`sudo herald setup-link\` prints"
else
    # A chroot or a container: nothing starts Herald by itself, so say how; and run it
    # once (as the herald user, on a spare loopback port) to make the setup link and print it.
    say "systemd is not running here (a chroot or container): nothing starts Herald by itself."
    echo "    Start Herald by hand (it reads $ENV_FILE and runs as the herald user):"
    echo "      nohup herald serve >> /var/log/herald.log 2>&1 &"
    if [ -n "$domain" ]; then
        echo "    and Caddy, as root (it listens on ports 80 and 443):"
        echo "      nohup caddy run --adapter caddyfile --config /etc/caddy/Caddyfile >> /var/log/caddy.log 2>&1 &"
    fi
    setup_hint="the setup link Herald prints when it starts"
    if [ "$start" = 1 ]; then
        spare=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        HERALD_HOST=127.0.0.1 HERALD_PORT=$spare /usr/local/bin/herald serve > "$work/first-start.log" 2>&1 &
        herald_pid=$!
        answered=0
        for _ in $(seq 1 120); do
            if healthy "$spare"; then answered=1; break; fi
            kill -0 "$herald_pid" 2>/dev/null || break
            sleep 1
        done
        kill "$herald_pid" 2>/dev/null || true
        wait "$herald_pid" 2>/dev/null || true
        link=$(grep -o -E 'https?://[^ ]+/setup/[A-Za-z0-9_-]+' "$work/first-start.log" | tail -n 1 || true)
        if [ -n "$link" ]; then
            setup_hint="this one-time setup link: $link"
        elif [ "$answered" = 1 ]; then
            setup_hint="your admin account (one exists already)"
        else
            echo "install.sh: Herald did not start; what it printed:" >&2
            tail -n 20 "$work/first-start.log" >&2
        fi
    fi
fi

cat <<EOF

Herald is installed in $PREFIX; its data is in $DATA_DIR, its settings in $ENV_FILE.
Create the first admin with $setup_hint
or with:                           sudo herald create-admin --email you@example.com
Back up with:                      sudo herald backup $DATA_DIR/backups/herald-\$(date +%F).sqlite3
EOF

#!/bin/sh
# /usr/local/bin/herald: Herald's command line as the service runs it, with the settings
# in /etc/herald/herald.env and as the herald user (so files it makes in /var/lib/herald
# stay Herald's). Installed by image/install.sh. Examples:
#   sudo herald create-admin --email you@example.com
#   sudo herald backup /var/lib/herald/backups/herald-$(date +%F).sqlite3
set -eu
# Files Herald writes for you (a backup: accounts, hashes, encrypted secrets) are yours alone.
umask 077
HERALD_DATA_DIR=/var/lib/herald
HERALD_HOST=127.0.0.1
HERALD_PORT=8080
if [ -r /etc/herald/herald.env ]; then
    set -a
    # shellcheck source=/dev/null
    . /etc/herald/herald.env
    set +a
fi
export HERALD_DATA_DIR HERALD_HOST HERALD_PORT
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=herald --regid=herald --init-groups /opt/herald/bin/herald "$@"
fi
exec /opt/herald/bin/herald "$@"

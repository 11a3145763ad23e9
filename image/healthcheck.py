"""The container's HEALTHCHECK: exit 0 when Herald's /healthz answers 200, 1 otherwise.

Standard library only, so the image needs no curl. It asks the port Herald listens on
(HERALD_PORT) on the loopback address, whatever HERALD_HOST binds.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main() -> int:
    host = os.environ.get("HERALD_HOST", "127.0.0.1")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{os.environ.get('HERALD_PORT', '8080')}/healthz"
    # No proxy: an HTTP_PROXY set for Herald's outbound webhooks must not catch this.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            body = json.load(response)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{body.get('status')} (Herald {body.get('version')}, {body.get('database')})")
    return 0 if body.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

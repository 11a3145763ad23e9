# syntax=docker/dockerfile:1
# Herald's appliance image: Debian bookworm slim, Debian's Python 3.11, Herald in a virtualenv.
#
#   docker build -t herald .
#   docker run -d --name herald -p 8080:8080 -v herald:/data herald
#
# Behind a TLS-intercepting proxy, hand pip the proxy's CA bundle as a build secret:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t herald .
# and a pip.conf naming another package index (a mirror) as the secret "pipconf".
# Without either secret the build is a plain build. Nothing in it is specific to an
# architecture: the same file builds for amd64 and arm64 (docker buildx --platform ...).

# --- build: a virtualenv with Herald and its dependencies (pip and setuptools leave it) --
FROM debian:bookworm-slim AS build

# Versions come from bookworm's own (security-updated) archive: pinning them here would
# break the build at the next Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/herald

# Dependencies first, from pyproject.toml alone, so that a change to Herald's code does
# not download them again. Every dependency has wheels for amd64 and arm64 (a test checks
# the arm64 ones), so the build needs no compiler.
COPY pyproject.toml /src/pyproject.toml
RUN --mount=type=secret,id=ca --mount=type=secret,id=pipconf \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi \
 && /opt/herald/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /src/requirements.txt \
 && /opt/herald/bin/pip install --prefer-binary -r /src/requirements.txt

# .dockerignore lets only what the package needs into the build context.
COPY . /src
RUN --mount=type=secret,id=ca --mount=type=secret,id=pipconf \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi \
 && /opt/herald/bin/pip install --no-deps /src \
 && /opt/herald/bin/pip uninstall -y setuptools \
 && /opt/herald/bin/pip uninstall -y pip

# --- the image: Python's runtime and the virtualenv, no build tools ---------------------
FROM debian:bookworm-slim

# Unpinned for the same reason as above (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin herald \
 && install -d -o herald -g herald -m 0750 /data

COPY --from=build /opt/herald /opt/herald
COPY image/healthcheck.py /opt/herald/healthcheck.py

ENV PATH=/opt/herald/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HERALD_HOST=0.0.0.0 \
    HERALD_PORT=8080 \
    HERALD_DATA_DIR=/data

# Numeric, so that orchestrators (runAsNonRoot) can tell it is not root.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/herald/bin/python", "/opt/herald/healthcheck.py"]

# Exec form: herald is PID 1 and gets SIGTERM itself. `herald serve` applies the database
# migrations, then serves; on SIGTERM hypercorn stops accepting, lets requests in flight
# finish (up to 10 s) and Herald's shutdown hooks run: the latest printer status is saved
# and claimed webhook deliveries go back to the queue.
# `docker stop` waits 10 s by default; give it --time 20 for a margin.
ENTRYPOINT ["herald"]
CMD ["serve"]

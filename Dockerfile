# coffer: the backup tool and its scheduled agent, as a Docker image.
#
#   docker build -t coffer .
#   docker run -d -v app-data:/backup/app-data:ro -v /var/run/docker.sock:/var/run/docker.sock \
#       -e COFFER_REPOSITORY=s3:https://minio:9000/backups -e COFFER_PASSWORD_FILE=/run/secrets/coffer \
#       coffer                      # = coffer agent: backs up every directory under /backup at 05:04
#
# Configuration is environment variables (doc/agent.md).  Without a Docker
# engine: tests/e2e/image.sh builds it with buildah and runs it with podman.
# Build it in the docker format (`buildah bud --format docker`): the OCI
# format has no HEALTHCHECK.
#
# Runs as root by default: it must read every file of every volume mounted
# under /backup, whatever uid the application wrote them with, and reach the
# Docker socket to stop labelled containers.  When the volumes are readable by
# one uid and no containers are stopped, run it as that uid instead
# (`docker run --user 10001:10001`, state directory writable by it); the
# image has a "coffer" user (uid 10001) for that.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libsodium-dev libzstd-dev libjansson-dev libcmocka-dev libarchive-dev libsqlite3-dev \
      libcurl4-openssl-dev libssl-dev libexpat1-dev libmariadb-dev libmicrohttpd-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# the project's default build type (-O2 -g, what CI tests); symbols stripped
RUN cmake -S . -B /tmp/build \
 && cmake --build /tmp/build -j"$(nproc)" --target coffer \
 && install -s -m 0755 /tmp/build/coffer /usr/local/bin/coffer

FROM debian:bookworm-slim
# only the shared libraries the binary links, plus CA roots (S3 over TLS),
# zone data (COFFER_SCHEDULE is read in TZ), PostgreSQL's pg_dump and psql
# (--postgres / COFFER_POSTGRES drive them: doc/databases.md) and curl for
# hooks (examples/coffer.env's COFFER_PRE_COMMAND/POST_COMMAND templates)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsodium23 libzstd1 libjansson4 libarchive13 libsqlite3-0 libcurl4 libssl3 libexpat1 \
      libmariadb3 libmicrohttpd12 libpq5 postgresql-client-15 ca-certificates tzdata curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/coffer --shell /usr/sbin/nologin coffer \
 && mkdir -p /backup /var/lib/coffer \
 && chown coffer:coffer /var/lib/coffer
COPY --from=build /usr/local/bin/coffer /usr/local/bin/coffer
ENV TZ=UTC COFFER_STATE_DIR=/var/lib/coffer COFFER_CACHE_DIR=/var/lib/coffer/cache COFFER_BACKUP_ROOT=/backup
VOLUME ["/var/lib/coffer"]
STOPSIGNAL SIGTERM
# the agent writes its state file at start, so no start period is needed
HEALTHCHECK --interval=5m --timeout=20s --retries=2 CMD ["coffer", "healthcheck"]
ENTRYPOINT ["coffer"]
CMD ["agent"]

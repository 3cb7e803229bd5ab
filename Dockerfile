# portsync in a container: the release binary that `scripts/build-release` makes (the Swift
# standard library linked in statically; glibc and libstdc++ come from the image), run as an
# unprivileged user. Build the binary first, then the image:
#
#   scripts/build-release && docker build -t portsync .
#
# BASE is any Debian 12 (bookworm) or newer image with glibc 2.36+. scripts/test-container builds
# this file with BASE set to a bookworm minbase made by debootstrap and runs the README's compose
# recipe with it; debian:bookworm-slim, the default, is the same release from Docker Hub.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY .build/release/portsync /usr/local/bin/portsync
# A named volume starts as a copy of its mount point: made here, owned by portsync's user, so
# the state file can be written.
RUN mkdir -m 0700 /state && chown 65532:65532 /state
USER 65532:65532
ENV PORTSYNC_SOURCE_STRATEGY=gluetun \
    PORTSYNC_DAEMON_STATE_FILE=/state/state.json
VOLUME /state
# portsync runs as PID 1 and stops on SIGTERM at once (docker stop).
STOPSIGNAL SIGTERM
# `portsync status`: 0 when the port is applied and verified, 1 when not, 3 or 4 when the
# daemon is gone or has written no state yet.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/usr/local/bin/portsync", "status"]
ENTRYPOINT ["/usr/local/bin/portsync"]
CMD ["run"]

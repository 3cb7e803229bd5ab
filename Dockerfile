# portsync in a container, next to Gluetun. Untested: these build machines have no Docker
# engine. Multi-stage: the build stage compiles with the static Swift standard library, the
# final stage holds only glibc and the binary, and runs as an unprivileged user.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY scripts ./scripts
RUN scripts/build-release && strip .build/release/portsync

FROM debian:bookworm-slim
COPY --from=build /src/.build/release/portsync /usr/local/bin/portsync
USER 65532:65532
ENV PORTSYNC_SOURCE_STRATEGY=gluetun \
    PORTSYNC_DAEMON_STATE_FILE=/state/state.json
VOLUME /state
ENTRYPOINT ["/usr/local/bin/portsync"]
CMD ["run"]

# mesa-gateway on Debian 12, built with the script CI uses (.ci/install-deps).
#   docker build -t mesa-gateway .
#   docker run -p 4500:4500 -e WS_KEY_FILE=/run/secrets/ws_key mesa-gateway
# MESA_THREADS defaults to the CPUs the container may use (its cgroup quota).
FROM debian:12 AS build
RUN apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bash .ci/install-deps \
    && meson setup /build --buildtype=release -Dtests=false -Dbench=false -Dexamples=true --prefix=/usr/local \
    && meson compile -C /build \
    && meson install -C /build --destdir /out

FROM debian:12
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
      libboost-json1.81.0 libhiredis0.14 libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mesa
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
USER mesa
ENV MESA_PORT=4500 LOG_FORMAT=json
EXPOSE 4500
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${MESA_ADMIN_PORT:-$MESA_PORT}/health" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mesa-gateway"]

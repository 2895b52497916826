# syntax=docker/dockerfile:1
# Dockerfile -- one image with both programs: `gatekeeper` (the API, the default command) and
# `gatekeeper-worker`. Two stages: the first compiles with the -dev packages, the second holds
# only the binaries and their runtime libraries, and runs them as an unprivileged user.
# docker-compose.yml builds it; see docs/OPERATIONS.md, "Deployment".

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE}-slim AS build
# The package lists live in scripts/install-deps: --build is what compiles the binaries.
COPY scripts/install-deps /usr/local/sbin/gk-install-deps
RUN gk-install-deps --build && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps build directories, .git and .env (secrets) out of the context.
COPY . .
# DEPS_STAMP= : the packages are in place already; make must not install the test ones.
RUN make BUILD=/out DEPS_STAMP= all

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# --runtime: only the libraries the binaries link. curl is for the health checks only.
COPY scripts/install-deps /usr/local/sbin/gk-install-deps
RUN gk-install-deps --runtime \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* /usr/local/sbin/gk-install-deps \
    && groupadd --system --gid 10001 gatekeeper \
    && useradd --system --uid 10001 --gid gatekeeper --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gatekeeper
COPY --from=build /out/gatekeeper /out/gatekeeper-worker /usr/local/bin/
USER gatekeeper:gatekeeper
# In a container the API must listen beyond loopback; PORT stays the documented default.
ENV BIND=0.0.0.0 PORT=8000
EXPOSE 8000
# SIGTERM: the API refuses new connections and finishes requests in flight (SHUTDOWN_TIMEOUT);
# the worker finishes its tick. Give them more than SHUTDOWN_TIMEOUT before SIGKILL.
# Health checks live in docker-compose.yml, where each program gets its own.
STOPSIGNAL SIGTERM
CMD ["gatekeeper"]

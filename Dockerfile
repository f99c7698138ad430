# Shoal node image: a static binary of ./node on distroless, run as non-root.
#
#   docker build -t shoal .
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t shoal .
#   docker run --rm -p 8080:8080 shoal          # one node, in-memory store and bus
#
# docker-compose.yml runs three of these behind HAProxy with Redis and NATS.
# docs/deploy.md explains every build argument.

# The toolchain go.mod asks for, exactly: a floating tag ("golang:1.26")
# would build with whatever 1.26.x the registry has today. The bases are
# build arguments so that a mirror (or the stand-ins of
# scripts/compose-test) can take their place.
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# sockjs-client from npm, pinned by deploy/sockjs-client/package-lock.json:
# the node serves it at /sockjs.min.js and its pages load it from there,
# so they work where the public CDN cannot be reached.
FROM ${NODE_IMAGE} AS sockjs-client
WORKDIR /sockjs-client
COPY deploy/sockjs-client/package.json deploy/sockjs-client/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${GO_IMAGE} AS build
# Never download another toolchain behind our back: a base image whose Go
# does not satisfy go.mod fails the build instead.
ENV GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux
WORKDIR /src
# Modules first, so that editing the source does not download them again.
# GOPROXY (a build argument, empty = Go's default) reaches a company proxy.
ARG GOPROXY
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version every node reports (metrics, /_shoal/members, logs). The
# build context has no .git, so it comes from the builder: see above.
ARG VERSION
RUN go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X main.releaseVersion=${VERSION}" \
      -o /out/shoal ./node

# distroless/static: CA certificates, /etc/passwd with a "nonroot" user
# (uid 65532), no shell and no package manager.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/shoal /usr/local/bin/shoal
COPY --from=sockjs-client /sockjs-client/node_modules/sockjs-client/LICENSE /sockjs-client/node_modules/sockjs-client/package.json /usr/local/share/shoal/sockjs-client/
COPY --from=sockjs-client /sockjs-client/node_modules/sockjs-client/dist/sockjs.min.js /usr/local/share/shoal/sockjs-client/dist/
ENV SHOAL_SOCKJS_CLIENT=/usr/local/share/shoal/sockjs-client
USER 65532:65532
# The node's default (127.0.0.1:8080) is unreachable from outside a
# container; every flag also reads SHOAL_<FLAG>.
ENV SHOAL_LISTEN=0.0.0.0:8080
# HTTP, and memberlist gossip (TCP and UDP) when --gossip-listen is set.
EXPOSE 8080 7946/tcp 7946/udp
ENTRYPOINT ["/usr/local/bin/shoal"]

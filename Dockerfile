# Shoal node image: a static binary of ./node on distroless, run as non-root.
#
#   docker build -t shoal .
#   docker run --rm -p 8080:8080 shoal          # one node, in-memory store and bus
#
# docker-compose.yml runs three of these behind HAProxy with Redis and NATS.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that editing the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/shoal ./node

# distroless/static: CA certificates, /etc/passwd with a "nonroot" user
# (uid 65532), no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shoal /usr/local/bin/shoal
USER 65532:65532
# The node's default (127.0.0.1:8080) is unreachable from outside a
# container; every flag also reads SHOAL_<FLAG>.
ENV SHOAL_LISTEN=0.0.0.0:8080
# HTTP, and memberlist gossip (TCP and UDP) when --gossip-listen is set.
EXPOSE 8080 7946/tcp 7946/udp
ENTRYPOINT ["/usr/local/bin/shoal"]

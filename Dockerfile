# The bytebasket binary for docker-compose.yml. cgo stays on: the DuckDB engine needs it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -o /out/bytebasket ./cmd/bytebasket

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bytebasket /usr/local/bin/bytebasket
COPY config /etc/bytebasket
ENTRYPOINT ["/usr/local/bin/bytebasket"]

# openai-grpc-gateway container image: a Rust build stage and a distroless runtime stage.
#   docker build -t openai-grpc-gateway:latest .
#   docker run --rm -p 50051:50051 openai-grpc-gateway:latest --demo
# Needs BuildKit (the default builder of Docker Engine 23+) for the cache mounts.
# Flags and environment variables: README.md "Configuration".

# Cargo.toml: edition 2024, rust-version 1.88. Bookworm, to match the runtime image's glibc.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# benches/ is copied because Cargo.toml declares the bench target and cargo rejects a manifest
# whose declared target file is missing; web/dist/ is the built web page that src/web.rs embeds
# (no npm in the image). .dockerignore keeps everything else out.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
COPY web/dist ./web/dist
# Extra cargo flags, e.g. --build-arg CARGO_BUILD_FLAGS=--no-default-features to leave out the
# built-in demo upstream where Cargo.toml makes it a default feature.
ARG CARGO_BUILD_FLAGS=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin openai-grpc-gateway ${CARGO_BUILD_FLAGS} \
    && install -D -m 0755 target/release/openai-grpc-gateway /out/openai-grpc-gateway

# glibc and libgcc only; TLS roots are compiled into the binary (reqwest with rustls-tls).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/openai-grpc-gateway /usr/local/bin/openai-grpc-gateway
USER 65532:65532
# mimalloc, the binary's allocator, gives freed memory back at once (BENCHMARKS.md, "Allocator
# and runtime"): RSS falls back after a burst of streams.
ENV MIMALLOC_PURGE_DELAY=0
# 50051: gRPC, gRPC-Web and the web page (--listen); 9464: Prometheus metrics, served only with --metrics-listen.
EXPOSE 50051 9464
# --listen may appear once only: a Kubernetes `command` replaces this (deploy/kubernetes).
ENTRYPOINT ["/usr/local/bin/openai-grpc-gateway", "--listen", "0.0.0.0:50051"]

# sluice: build with the pinned toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY pipelines /etc/sluice
# Not root: data_dir holds raw events and checkpoints, owned by this user.
RUN useradd --system --uid 10001 --home-dir /var/lib/sluice --create-home --shell /usr/sbin/nologin sluice \
    && chmod 0700 /var/lib/sluice \
    && install -d -o 10001 -g 10001 -m 0755 /secrets
USER 10001:10001
WORKDIR /var/lib/sluice
EXPOSE 9598 6000
ENTRYPOINT ["sluice"]
CMD ["run", "/etc/sluice/elasticsearch.yaml"]

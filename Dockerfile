# ---- build ----
FROM rust:1.95-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
# Cargo loads every workspace member before building any, so the bench's package must be
# present even though only the service is built.
COPY crates ./crates
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked -p cronhook --bin cronhook

# ---- runtime ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 cronhook \
    && useradd --uid 10001 --gid cronhook --no-create-home --shell /usr/sbin/nologin cronhook \
    && mkdir /data \
    && chown cronhook:cronhook /data
COPY --from=builder /build/target/release/cronhook /usr/local/bin/cronhook
USER cronhook
WORKDIR /data
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=sqlite:///data/cronhook.db
EXPOSE 3000
ENTRYPOINT ["cronhook"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# cdcd container image: a virtualenv built in one stage, copied into a clean slim runtime.
#
#   docker build -t cdcd .
#   docker run --rm -e CDCD_DSN='host=db dbname=shop user=cdcd' -e PGPASSWORD=... \
#     -e CDCD_BOOTSTRAP_SERVERS=kafka:9092 -p 8080:8080 cdcd
#   docker run ... -v $PWD/cdcd.toml:/etc/cdcd/cdcd.toml:ro cdcd      (settings from a file)
#
# Configuration: /etc/cdcd/cdcd.toml (an empty default; mount yours over it), then
# CDCD_* environment variables, then flags after the image name (e.g. `run --log-level debug`).

ARG PYTHON_VERSION=3.12

# The full image (not -slim) has gcc and the Python headers for cdcd's compiled core; only this stage needs them.
FROM python:${PYTHON_VERSION} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/cdcd
# psycopg[binary], confluent-kafka (with fastavro for Avro) and orjson ship manylinux wheels: no libpq.
# pip byte-compiles, so the non-root runtime never needs to write .pyc files.
COPY pyproject.toml setup.py README.md ./
COPY cdcd ./cdcd
# Cython comes from PyPI as a build requirement. The image must run the compiled core: fail if it was not built.
RUN /opt/cdcd/bin/pip install . \
    && /opt/cdcd/bin/python -I -c "import cdcd.native._core"

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="cdcd" \
      org.opencontainers.image.description="PostgreSQL change data capture to Debezium-compatible Kafka events" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 cdcd \
    && useradd --system --uid 10001 --gid cdcd --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cdcd \
    && mkdir -p /etc/cdcd \
    && printf '%s\n' '# Mount your cdcd.toml here (see docs/configuration.md); CDCD_* variables override it.' \
       > /etc/cdcd/cdcd.toml
COPY --from=build /opt/cdcd /opt/cdcd
# No CDCD_* defaults here: the environment would override the mounted file.
ENV PATH=/opt/cdcd/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# No curl in slim images: the runtime's own Python asks /healthz (503 -> non-zero exit).
# Set a non-default port with CDCD_HTTP_PORT (not only in the file) so this check follows it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CDCD_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
# SIGTERM (docker stop) commits the open Kafka transaction: give it `--stop-timeout 45`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["cdcd"]
CMD ["run", "--config", "/etc/cdcd/cdcd.toml"]

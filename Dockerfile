# syntax=docker/dockerfile:1
# dynamodb-replicator: one image for the worker, the producer, Flower and the commands.
#   docker build -t dynamodb-replicator .              (the runtime image, the last stage)
#   docker build --target moto -t replicator-moto .    (the local DynamoDB/S3 of the sandbox)
# Build stages hold pip's work; the final stages are slim Python with a virtualenv (the project
# installed into it), no compilers, and run as an unprivileged user (uid 10001; moto 10002).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the project and its dependencies in /opt/venv (wheels only, no compiler needed) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY producer/ producer/
COPY tasks/ tasks/
COPY commands/ commands/
COPY cli/ cli/
RUN /opt/venv/bin/pip install --prefer-binary .

# -- moto: the local DynamoDB + S3 endpoint (compose profile "local" only) ---------------------
FROM ${PYTHON_IMAGE} AS moto-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/moto && /opt/moto/bin/pip install --prefer-binary "moto[server]>=5.0.20,<6"

FROM ${PYTHON_IMAGE} AS moto
RUN useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin moto
COPY --from=moto-build /opt/moto /opt/moto
# moto's server with the project's fixes of its differences from the real services
COPY tests/support/moto_server.py /opt/moto/moto_server.py
USER 10002:10002
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD ["/opt/moto/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/moto-api/', timeout=2)"]
ENTRYPOINT ["/opt/moto/bin/python", "/opt/moto/moto_server.py", "--host", "0.0.0.0", "--port", "5000"]

# -- runtime: the final image ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dynamodb-replicator" \
      org.opencontainers.image.description="One-way DynamoDB replication, diff and S3 backups on Celery"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --create-home --home-dir /home/replicator \
      --shell /usr/sbin/nologin replicator
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY docker/entrypoint.sh docker/demo_tables.py docker/
USER 10001:10001
EXPOSE 5555 9100 9101
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["worker"]

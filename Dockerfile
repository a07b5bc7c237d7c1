# syntax=docker/dockerfile:1
# The Pamoja API image: python:3.11-slim, the package installed from a wheel (no source tree in the
# final image), run as an unprivileged user. compose.yaml runs it as `pamoja migrate` and
# `pamoja serve`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api/ api/
COPY auth/ auth/
COPY cli/ cli/
COPY config/ config/
COPY console/ console/
COPY db/ db/
COPY domain/ domain/
COPY migrations/ migrations/
COPY partners/ partners/
RUN python -m venv /opt/pamoja \
    && /opt/pamoja/bin/pip install . \
    && /opt/pamoja/bin/python -c "import db.migrate, pathlib; assert any(db.migrate.MIGRATIONS_DIR.glob('versions/*.py'))"

FROM python:3.11-slim
ENV PATH=/opt/pamoja/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAMOJA_HOST=0.0.0.0 \
    PAMOJA_PORT=8000
RUN groupadd --system --gid 10001 pamoja \
    && useradd --system --uid 10001 --gid pamoja --home-dir /home/pamoja --create-home --shell /usr/sbin/nologin pamoja
COPY --from=build /opt/pamoja /opt/pamoja
WORKDIR /home/pamoja
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
# Production needs DATABASE_URL and the secrets (see compose.yaml); migrations run as their own step.
CMD ["pamoja", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate", "--workers", "2"]

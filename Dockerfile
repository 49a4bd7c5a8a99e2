# The sidecar image: the same `keycrm-bridge` commands as the native path (README, Makefile).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/keycrm-bridge.sqlite3 BIND=0.0.0.0:8787

# sqlite3: `sqlite3 /data/keycrm-bridge.sqlite3 ".backup ..."` for backups (docs/operations.md).
RUN apt-get update && apt-get install -y --no-install-recommends sqlite3 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY sidecar ./sidecar
# The same pinned versions as `make venv` (constraints.txt).
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system --home /data bridge && mkdir -p /data && chown bridge /data

USER bridge
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=4)" || exit 1
CMD ["keycrm-bridge", "run", "--data-dir", "/data"]

# The swarmlens reporter: `swarmlens db migrate`, then gunicorn.
#   docker build -t swarmlens .                                          (docker-compose.yml builds it for you)
#   docker build --build-arg SWARMLENS_EXTRAS=demo -t swarmlens-demo .   (adds `swarmlens demo`: compose's demo profile)
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SWARMLENS_DATA_DIR=/var/lib/swarmlens

WORKDIR /app
# swarmlens at the versions the tests pass with (constraints.txt): what a server needs, or with
# SWARMLENS_EXTRAS=demo also the demo, which needs the instrumentation distribution (built from
# ./instrumentation, as it is not on PyPI).
# (scripts/check_dockerfile.py runs these steps in CI, in a clean venv, with each value of the argument.)
ARG SWARMLENS_EXTRAS=""
COPY pyproject.toml README.md constraints.txt ./
COPY instrumentation ./instrumentation
COPY reporter ./reporter
COPY collector_config ./collector_config
RUN pip install --no-cache-dir -c constraints.txt ${SWARMLENS_EXTRAS:+./instrumentation} ".${SWARMLENS_EXTRAS:+[$SWARMLENS_EXTRAS]}" \
    && useradd --system --uid 10001 --home-dir /var/lib/swarmlens --create-home swarmlens

USER swarmlens
EXPOSE 8000

# Any HTTP answer below 500 from the reporter counts as healthy (the front page may redirect to login).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import sys, urllib.request, urllib.error\ntry:\n    urllib.request.urlopen('http://127.0.0.1:8000/', timeout=4)\nexcept urllib.error.HTTPError as e:\n    sys.exit(e.code >= 500)\nexcept Exception:\n    sys.exit(1)"]

# Migrations are idempotent and safe at every start; then the production WSGI server.
CMD ["sh", "-c", "swarmlens db migrate && exec gunicorn --bind 0.0.0.0:8000 --workers \"${SWARMLENS_REPORTER_WORKERS:-2}\" --threads \"${SWARMLENS_REPORTER_THREADS:-8}\" --access-logfile - --error-logfile - 'swarmlens.app:create_app()'"]

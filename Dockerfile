# releasebot container image: `releasebot run` on port 3000 as an unprivileged user.
#
#   docker build -t releasebot .
#   docker run -p 3000:3000 --env-file releasebot.env \
#     -v "$PWD/releasebot.yml:/app/releasebot.yml:ro" releasebot
#
# The config file is read from /app/releasebot.yml (RELEASEBOT_CONFIG). The default SQLite
# database lives in /app and goes away with the container: mount a volume there, or set
# DATABASE_URL to PostgreSQL for anything that must keep its audit trail.

# The base image by digest, so every build starts from the same bytes; the tag it was taken
# from is in the comment. To move on, pull the tag and put its new digest in both stages.
#   python:3.11.10-slim-bookworm (a python:3.11-slim build)

# --- build: install the locked dependencies, then the package, into a virtual environment --
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16 AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
# The lock first: its layer stays cached while only the code changes.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md releasebot.example.yml ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps .

# --- runtime: the virtual environment only, no build context --------------------------------
# python:3.11.10-slim-bookworm, as above
FROM python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=3000

# A fixed uid/gid so volume permissions can be granted to it from the host.
RUN groupadd --system --gid 10001 releasebot \
    && useradd --system --uid 10001 --gid releasebot --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin releasebot \
    && install -d -o releasebot -g releasebot /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
# Numeric, so a runtime can verify it is not root (e.g. Kubernetes runAsNonRoot).
USER 10001:10001

EXPOSE 3000

# slim has no curl: ask /healthz with Python's standard library (non-2xx raises, exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]

ENTRYPOINT ["releasebot"]
CMD ["run"]

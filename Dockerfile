# The kitcn-temporal worker for the reference app (activities/ + workflows/crons.py).
# docker-compose.yml builds it for two services: `kitcn-setup` (kitcn-temporal setup) and
# `kitcn-worker` (the command below, plus --database for the app's PostgreSQL database).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The library first (its layer is reused while only the app changes), pinned like the suite.
COPY pyproject.toml constraints.txt README.md ./
COPY kitcn_temporal ./kitcn_temporal
RUN pip install -c constraints.txt '.[sql]'

# The app: imported from the working directory, as the command line does.
COPY activities ./activities
COPY workflows ./workflows

RUN useradd --create-home --uid 10001 kitcn && mkdir .kitcn && chown kitcn .kitcn
USER kitcn

# Connection settings come from Temporal's env config: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
# TEMPORAL_API_KEY, TEMPORAL_TLS_* (see the README). SIGTERM stops it gracefully.
CMD ["kitcn-temporal", "worker", "--app", "activities", "--crons", "workflows.crons:crons"]

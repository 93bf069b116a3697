# One image for every process: API, workers (CPU and GPU), beat, flower, migrations.
# GPU hosts run it with the NVIDIA container toolkit; torch's PyPI wheel bundles CUDA.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    MODELS_DIR=/models

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so code changes do not reinstall torch.
ARG TORCH=torch==2.13.0
RUN pip install "$TORCH" && pip install openai-whisper==20250625 \
    && pip install --no-deps resemblyzer==0.1.4
COPY pyproject.toml README.md ./
COPY client ./client
RUN mkdir -p core app workers \
    && pip install ".[models,ct2]" ./client \
    && pip uninstall -y hark

COPY alembic.ini gunicorn.conf.py Procfile ./
COPY migrations ./migrations
COPY core ./core
COPY app ./app
COPY workers ./workers
RUN pip install --no-deps -e .

# Convert the shipped Whisper weights once, at build time (no downloads at run time).
RUN python -m workers.asr.convert --model tiny.en && python -m workers.asr.convert --model base

RUN useradd --create-home --uid 1000 hark && mkdir -p /data && chown -R hark /data /models
USER hark
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]

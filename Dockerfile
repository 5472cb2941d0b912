# One image for every process of the Procfile; compose.yaml (or the platform) picks the command.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    PORT=8000

WORKDIR /app
COPY requirements.txt .
RUN pip install --require-hashes -r requirements.txt

RUN useradd --create-home --uid 10001 paper
COPY --chown=paper:paper . .
USER paper

EXPOSE 8000
CMD ["sh", "-c", "gunicorn -c gunicorn.conf.py wsgi:app"]

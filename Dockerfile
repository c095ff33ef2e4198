FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY dispatch ./dispatch
COPY handlers ./handlers
COPY models ./models
COPY tasks ./tasks
RUN pip install --no-cache-dir .
RUN useradd --create-home dispatch && mkdir -p /data/media /data/outbox && chown -R dispatch /data
USER dispatch
EXPOSE 8888
CMD ["dispatch", "serve"]

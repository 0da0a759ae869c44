# Lämpiö Live node. Media (WebRTC) needs UDP between browsers and this node: publish the ICE
# address with LAMPIO_ICE_HOST, or relay through the TURN server in docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lampio_stream ./lampio_stream
COPY rooms ./rooms
COPY media ./media
COPY signaling ./signaling
COPY clients ./clients
RUN pip install . && useradd --system --uid 10001 lampio
USER lampio

ENV LAMPIO_HOST=0.0.0.0 LAMPIO_PORT=8080 LAMPIO_LOG_FORMAT=json
EXPOSE 8080 1935
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
CMD ["lampio-stream", "serve"]

# The server on the embedded default, installed and started as the README's first command does.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY dicomweb_server ./dicomweb_server
COPY conformance ./conformance
RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -e .

ENV DICOMWEB_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
CMD ["/app/.venv/bin/dicomweb-server", "serve"]

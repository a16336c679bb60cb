FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TZ=Asia/Shanghai
WORKDIR /app

# The PDF report (WeasyPrint: pango; Chinese text: Noto CJK).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --home /var/lib/envmon envmon \
    && mkdir -p /var/lib/envmon && chown envmon /var/lib/envmon
COPY config ./config

USER envmon
ENV ENVMON_DATA_DIR=/var/lib/envmon ENVMON_CONFIG_DIR=/app/config
EXPOSE 9212 8080
CMD ["envmon", "run"]

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY . .
RUN pip install --no-cache-dir . && useradd --system --home /app soc && chown -R soc /app
USER soc
EXPOSE 8000
CMD ["gunicorn", "soc_console.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]

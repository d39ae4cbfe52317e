# nautilus-probe: the exporter, the synthetic engines and the monolith in one image.
# The plain install: no grafanalib, no matplotlib (those are the [mixin] and
# [loadtest] extras, for generating dashboards and report plots).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
# nautilus-wire, the engines' distribution (wire/ builds it from nautilus_wire/).
COPY wire wire
COPY nautilus_wire nautilus_wire
COPY nautilus_config nautilus_config
COPY exporter exporter
COPY synthetic synthetic
COPY nautilus_probe nautilus_probe
COPY nautilus_loadtest nautilus_loadtest
COPY alerts alerts
COPY config config
COPY deploy deploy
COPY thresholds.yml ./
# A numeric user, so Kubernetes can check runAsNonRoot (deploy/kubernetes runs as 10001).
RUN pip install --no-cache-dir ./wire . \
    && groupadd --system --gid 10001 probe && useradd --system --uid 10001 --gid probe probe
USER 10001:10001
EXPOSE 9478
ENTRYPOINT ["nautilus-probe"]
CMD ["exporter", "--config.file=/app/config/exporter.yml", "--redis.url=redis://redis:6379/0"]

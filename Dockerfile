# One image for the four services and the provisioning job; docker-compose.yml gives each
# container its command (see the Procfile for the services' commands).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/signgate
WORKDIR /src
# The pins make run and make test install, less the tools (requirements-runtime.lock is the
# runtime's share of requirements.lock: the same versions, the same hashes). A layer of its own:
# it is rebuilt only when the lock changes.
COPY requirements-runtime.lock ./
RUN /opt/signgate/bin/pip install --require-hashes -r requirements-runtime.lock
COPY contracts/ contracts/
COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY services/ services/
# Not editable: the code lands in the venv's site-packages and /src stays in this stage.
RUN /opt/signgate/bin/pip install --no-deps ./contracts .

FROM python:3.11-slim
ENV PATH=/opt/signgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 signgate \
    && useradd --system --uid 10001 --gid signgate --no-create-home \
        --shell /usr/sbin/nologin signgate
COPY --from=build /opt/signgate /opt/signgate
USER 10001:10001
CMD ["faststream", "--help"]

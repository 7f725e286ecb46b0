# The `tarn` command line on an edge node (submit, status, scale, stop, logs). tarn-am itself
# is not a container of its own: `tarn submit` starts it as the YARN application master.
#   docker build -f deploy/docker/am.Dockerfile -t tarn/cli .
#   docker run --rm --network host -v /etc/hadoop/conf:/etc/hadoop/conf:ro \
#     -v /opt/hadoop:/opt/hadoop:ro -e HADOOP_HOME=/opt/hadoop tarn/cli tarn status --name triton
# skein's Java driver finds Hadoop by running `yarn classpath --glob`: mount a Hadoop
# client (HADOOP_HOME) and its configuration; with Kerberos, a ticket cache too.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HADOOP_CONF_DIR=/etc/hadoop/conf JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless krb5-user \
 && rm -rf /var/lib/apt/lists/*
COPY shared /src/shared
COPY services/am /src/services/am
RUN pip install /src/shared /src/services/am && rm -rf /src
ENV PATH="/opt/hadoop/bin:${PATH}"
CMD ["tarn", "--help"]

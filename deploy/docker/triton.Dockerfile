# The Triton container image: NVIDIA's Triton Inference Server with tarn-node-agent, the
# entry point of every Triton container TARN starts through YARN's Docker runtime.
#   docker build -f deploy/docker/triton.Dockerfile --build-arg TRITON_TAG=24.09 -t tarn/triton:24.09 .
#   tarn submit --image tarn/triton:24.09 ...
# NVIDIA's image has Python 3.10; shared and the node-agent support it. tarn submit
# runs `tarn-node-agent` (the spec's launch script), configured by TARN_NODE_AGENT_* that
# the AM sets; YARN mounts /etc/hadoop/conf read-only for WebHDFS and Kerberos.
ARG TRITON_TAG=24.09
FROM nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3
# "[kerberos]" adds SPNEGO for WebHDFS on a Kerberized cluster (builds gssapi).
ARG NODE_AGENT_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HADOOP_CONF_DIR=/etc/hadoop/conf
RUN if [ -n "$NODE_AGENT_EXTRAS" ]; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends libkrb5-dev gcc \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY shared /src/shared
COPY services/node-agent /src/services/node-agent
RUN python3 -m pip install /src/shared "/src/services/node-agent${NODE_AGENT_EXTRAS}" \
 && rm -rf /src \
 && python3 -c "import tarn_node_agent, tarn_shared" \
 && command -v tarn-node-agent
ENV TARN_NODE_AGENT_TRITONSERVER=/opt/tritonserver/bin/tritonserver
CMD ["tarn-node-agent"]

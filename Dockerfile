# syntax=docker/dockerfile:1
#
# tabagent for NVIDIA GPU hosts: the daemon, node-llama-cpp with its prebuilt CUDA binaries, a CUDA build of
# llama-server, and the transformers sidecar's Python venv (torch with CUDA). See docs/deployment.md ("Docker").
#
#   docker build -t tabagent .
#   docker run --gpus all --init --stop-timeout 45 -p 8471:8471 -v models:/models -v tabagent-cache:/cache \
#     -e TABAGENT_API_KEYS="$(openssl rand -hex 24)" -e TABAGENT_ALLOWED_HOSTS=gpu-box.example.com tabagent
#
# This image is not built in the project's CI (CI machines have no Docker engine). Every RUN below is either a
# plain apt-get/npm line or a script from deploy/docker/, and CI runs those scripts
# (test/deploy/dockerScripts.test.ts), together with a structural check of this file.
#
# CUDA 13.0 matches the project's GPU machine (driver 580, CUDA 13 only) and node-llama-cpp 3.21's prebuilt CUDA
# binaries, which link libcudart.so.13/libcublas.so.13 (their CUDA 12 fallback needs .so.12). CUDA 13 images need a
# host driver >= 580. For older drivers build with --build-arg CUDA_VERSION=12.9.1: node-llama-cpp then uses its
# CUDA 12 fallback binaries and llama-server is built with CUDA 12.
ARG CUDA_VERSION=13.0.2
ARG UBUNTU_VERSION=24.04

# ------------------------------------------------------------------------------------------------------ builder
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS builder
ARG NODE_VERSION=20.20.2
# CUDA 13 supports compute capability 7.5 (Turing) and newer; 90 = H100/H200. Fewer architectures build faster.
ARG CUDA_ARCHITECTURES=75;80;86;89;90
# Parallel compile jobs for llama-server (empty: one per CPU).
ARG BUILD_JOBS=
ENV DEBIAN_FRONTEND=noninteractive

RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl xz-utils git cmake ninja-build g++ && rm -rf /var/lib/apt/lists/*

COPY deploy/docker/install-node.sh /tmp/install-node.sh
RUN /tmp/install-node.sh --version "${NODE_VERSION}" --prefix /opt/node --link-dir /usr/local/bin

# llama-server first, in layers that only the lock file (which pins node-llama-cpp and so the llama.cpp source it
# bundles) and the build scripts invalidate: the CUDA build takes long, source changes should not repeat it.
# Only node-llama-cpp's bundled llama.cpp source is needed here: no install scripts (our build, node-llama-cpp's
# postinstall) and no optional packages (its ~700 MB of prebuilt binaries).
WORKDIR /build/llama
COPY package.json package-lock.json .npmrc ./
COPY native ./native
COPY deploy/docker/build-llama-server.sh ./deploy/docker/build-llama-server.sh
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
# native/build-llama-server.sh --cmake-flag -DGGML_CUDA=ON ... --print-path, copied out to /opt/llama-server.
RUN /build/llama/deploy/docker/build-llama-server.sh --app /build/llama --dest /opt/llama-server --backend cuda --cuda-architectures "${CUDA_ARCHITECTURES}" ${BUILD_JOBS:+--jobs "${BUILD_JOBS}"}

COPY . /src
# npm ci (its prepare script builds dist/) and npm run build, as CI does.
RUN /src/deploy/docker/build-app.sh --source /src --dest /opt/tabagent
# npm prune --omit=dev and the source tree removed.
RUN /opt/tabagent/deploy/docker/prune-runtime.sh /opt/tabagent

# ------------------------------------------------------------------------------------------------------ runtime
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# llama-server links OpenMP dynamically; the CUDA runtime image has cudart and cuBLAS already. Python runs the
# transformers sidecar.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 python3 python3-venv && rm -rf /var/lib/apt/lists/*

COPY --from=builder /opt/node /opt/node
COPY --from=builder /opt/tabagent /opt/tabagent
COPY --from=builder /opt/llama-server /opt/llama-server
RUN /opt/tabagent/deploy/docker/setup-runtime.sh --user tabagent --uid 10001 --models /models --cache /cache
# The transformers sidecar's venv (native/setup-python.sh --cuda; torch with CUDA), found through TABAGENT_DATA_DIR.
RUN /opt/tabagent/deploy/docker/install-python.sh --app /opt/tabagent --data-dir /opt/tabagent-data --cuda

# Every setting is a TABAGENT_* variable (docs/configuration.md); flags after the image name override them.
# Listening on 0.0.0.0 inside the container needs API keys: pass -e TABAGENT_API_KEYS=key1,key2 (or
# TABAGENT_API_KEY_FILE with a mounted file); only `serve --insecure-no-auth` starts without them. Clients on other
# machines must also be named in TABAGENT_ALLOWED_HOSTS (the Host header is checked; loopback names always pass).
# Change the port with TABAGENT_PORT (the health check reads it), not with --port.
ENV NODE_ENV=production \
    TABAGENT_HOST=0.0.0.0 \
    TABAGENT_PORT=8471 \
    TABAGENT_CACHE_DIR=/cache \
    HF_HOME=/cache/huggingface \
    HOME=/cache \
    TABAGENT_LLAMA_SERVER=/opt/llama-server/bin/llama-server \
    TABAGENT_DATA_DIR=/opt/tabagent-data \
    TABAGENT_PYTHON_AUTO_SETUP=false \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

USER tabagent
WORKDIR /cache
VOLUME ["/models", "/cache"]
EXPOSE 8471
# The daemon drains in-flight requests for up to 30 s (TABAGENT_SHUTDOWN_GRACE) on SIGTERM: give `docker stop`
# more than that (--stop-timeout 45, or stop_grace_period: 45s in compose).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "/opt/tabagent/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/opt/tabagent/bin/tabagent"]
CMD ["serve", "--models-dir", "/models"]

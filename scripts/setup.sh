#!/bin/sh
# Install what building and testing k1s needs on Debian 12. Idempotent; run as root.
set -eu

need=""
# The node's tools (CNI plugins, iptables, nftables and conntrack for the service proxy,
# nsenter, seccomp for libcontainer), and for the tests a registry, image tools, a static
# busybox to build images from, runc as the benchmark peer of the shim, openssl to issue a
# user's client certificate in the RBAC tests, and dnsperf as the load generator beside
# cluster DNS's own.
for pkg in curl ca-certificates gcc pkg-config etcd-server jq \
    containernetworking-plugins iptables iproute2 util-linux libseccomp-dev \
    docker-registry skopeo umoci busybox-static apache2-utils runc bsdutils openssl \
    nftables conntrack dnsperf; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "setup: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # etcd-server is the peer for the write-path benchmark; do not leave it running
    apt-get install -y -qq --no-install-recommends $need
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
        systemctl stop etcd || true
    fi
fi

if ! command -v kubectl >/dev/null 2>&1; then
    echo "setup: kubectl (1.32 or newer) must be on PATH for the end-to-end tests" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo (Rust 1.85 or newer) must be on PATH" >&2
    exit 1
fi

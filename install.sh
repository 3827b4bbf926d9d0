#!/bin/sh
# Installs k1s as a service, with one command:
#
#   curl -sfL <url-of-this-script> | INSTALL_K1S_URL=<url-of-a-k1s-binary> sh -
#   ./install.sh                      (from a checkout: builds the release binary if needed)
#   ./install.sh server --disable servicelb --node-label tier=edge
#
# Arguments are the command and flags the service runs (default `server`). Every K1S_*
# variable in the environment (K1S_DATA_DIR, K1S_TOKEN, K1S_NODE_NAME, ...) is kept in the
# service's environment file, as k1s reads its flags from them.
#
# INSTALL_K1S_BIN=path        install this binary
# INSTALL_K1S_URL=url         download the binary from here (curl or wget)
# INSTALL_K1S_SHA256=hex      the binary's expected sha256 (checked when given)
# INSTALL_K1S_SKIP_DOWNLOAD   true: keep the binary already in INSTALL_K1S_BIN_DIR
# INSTALL_K1S_SKIP_DEPS       true: do not install the node's Debian packages
# INSTALL_K1S_SKIP_ENABLE     true: write the service but do not enable it
# INSTALL_K1S_SKIP_START      true: enable but do not start it
# INSTALL_K1S_EXEC            the command and flags, when not given as arguments
# INSTALL_K1S_BIN_DIR         where k1s and its scripts go (/usr/local/bin)
# INSTALL_K1S_SYSTEMD_DIR     where the unit goes (/etc/systemd/system)
# INSTALL_K1S_CONFIG_DIR      k1s's configuration directory (/etc/k1s), removed on uninstall
#
# It also writes k1s-killall.sh (stops k1s and its containers, removes its network setup and
# mounts, keeps the data) and k1s-uninstall.sh (that, then removes k1s and all its data).
set -eu

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() {
    echo "[ERROR] $*" >&2
    exit 1
}

BIN_DIR=${INSTALL_K1S_BIN_DIR:-/usr/local/bin}
SYSTEMD_DIR=${INSTALL_K1S_SYSTEMD_DIR:-/etc/systemd/system}
CONFIG_DIR=${INSTALL_K1S_CONFIG_DIR:-/etc/k1s}
DATA_DIR=${K1S_DATA_DIR:-/var/lib/k1s}
SOURCE_DIR=$(cd "$(dirname "$0")" 2>/dev/null && pwd || true)

[ "$(id -u)" -eq 0 ] || fatal "run as root (k1s runs containers and programs the network)"
[ "$(uname -s)" = Linux ] || fatal "k1s runs on Linux, not $(uname -s)"

# The command and its flags: arguments first, then INSTALL_K1S_EXEC, then `server`.
if [ $# -eq 0 ]; then
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    set -- ${INSTALL_K1S_EXEC:-server}
fi
case "$1" in
server) SYSTEM_NAME=k1s ;;
agent) SYSTEM_NAME=k1s-agent ;;
-*) set -- server "$@" && SYSTEM_NAME=k1s ;;
*) fatal "unknown command '$1': expected server or agent" ;;
esac
# Canonical, as the killall script finds k1s's processes by their executable's path.
mkdir -p "$BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd -P)
UNIT=${SYSTEMD_DIR}/${SYSTEM_NAME}.service
ENV_FILE=${SYSTEMD_DIR}/${SYSTEM_NAME}.service.env
KILLALL=${BIN_DIR}/k1s-killall.sh
UNINSTALL=${BIN_DIR}/k1s-uninstall.sh

case "$(uname -m)" in
x86_64 | amd64) ARCH=amd64 ;;
aarch64 | arm64) ARCH=arm64 ;;
armv7l | armv7*) ARCH=arm ;;
*) fatal "unsupported architecture $(uname -m)" ;;
esac

# --- the node's packages: the CNI plugins and the netfilter tools ---
install_deps() {
    [ "${INSTALL_K1S_SKIP_DEPS:-false}" = true ] && return 0
    missing=
    [ -x /usr/lib/cni/bridge ] || [ -x /opt/cni/bin/bridge ] || missing="$missing containernetworking-plugins"
    command -v nft >/dev/null 2>&1 || missing="$missing nftables"
    command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
    command -v conntrack >/dev/null 2>&1 || missing="$missing conntrack"
    [ -n "$missing" ] || return 0
    if command -v apt-get >/dev/null 2>&1; then
        info "installing$missing"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null; } ||
            fatal "could not install$missing"
    else
        warn "install these yourself, pods need them:$missing"
    fi
}

# --- the binary ---
install_binary() {
    target=${BIN_DIR}/k1s
    if [ "${INSTALL_K1S_SKIP_DOWNLOAD:-false}" = true ]; then
        [ -x "$target" ] || fatal "INSTALL_K1S_SKIP_DOWNLOAD is set but $target is missing"
        info "keeping $target"
        return 0
    fi
    tmp=$(mktemp "${BIN_DIR}/.k1s.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    if [ -n "${INSTALL_K1S_BIN:-}" ]; then
        [ -f "$INSTALL_K1S_BIN" ] || fatal "INSTALL_K1S_BIN: no file $INSTALL_K1S_BIN"
        cp "$INSTALL_K1S_BIN" "$tmp"
    elif [ -n "${INSTALL_K1S_URL:-}" ]; then
        info "downloading $INSTALL_K1S_URL ($ARCH)"
        if command -v curl >/dev/null 2>&1; then
            curl -sfL -o "$tmp" "$INSTALL_K1S_URL" || fatal "download of $INSTALL_K1S_URL failed"
        elif command -v wget >/dev/null 2>&1; then
            wget -q -O "$tmp" "$INSTALL_K1S_URL" || fatal "download of $INSTALL_K1S_URL failed"
        else
            fatal "neither curl nor wget is installed"
        fi
    elif [ -n "$SOURCE_DIR" ] && [ -f "$SOURCE_DIR/Cargo.toml" ] && [ -d "$SOURCE_DIR/src" ]; then
        command -v cargo >/dev/null 2>&1 || fatal "building from $SOURCE_DIR needs cargo (or set INSTALL_K1S_BIN / INSTALL_K1S_URL)"
        info "building k1s in $SOURCE_DIR"
        (cd "$SOURCE_DIR" && cargo build --release --locked --bin k1s) || fatal "the build failed"
        cp "$SOURCE_DIR/target/release/k1s" "$tmp"
    else
        fatal "no k1s binary: set INSTALL_K1S_URL (a release binary for $ARCH) or INSTALL_K1S_BIN, or run from a checkout"
    fi
    if [ -n "${INSTALL_K1S_SHA256:-}" ]; then
        sum=$(sha256sum "$tmp" | cut -d' ' -f1)
        [ "$sum" = "$INSTALL_K1S_SHA256" ] || fatal "sha256 of the binary is $sum, expected $INSTALL_K1S_SHA256"
    fi
    chmod 0755 "$tmp"
    "$tmp" --version >/dev/null 2>&1 || fatal "the binary does not run on this machine"
    mv -f "$tmp" "$target"
    trap - EXIT
    info "installed $target: $("$target" --version)"
}

# --- k1s-killall.sh ---
write_killall() {
    info "writing $KILLALL"
    cat >"$KILLALL" <<EOF
#!/bin/sh
# Stops k1s and every container it started, then removes what it set up on this host: its
# mounts, pod network namespaces, the k1s0 bridge, its iptables chains and the service proxy's
# nftables table. The data directory (images, volumes, the store) stays.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
K1S_BIN=${BIN_DIR}/k1s
K1S_DATA_DIR=\${K1S_DATA_DIR:-${DATA_DIR}}
SYSTEMD_DIR=${SYSTEMD_DIR}
EOF
    cat >>"$KILLALL" <<'EOF'
RUN_DIR=/run/k1s

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in "$SYSTEMD_DIR"/k1s*.service; do
        [ -s "$unit" ] && systemctl stop "$(basename "$unit")"
    done
fi

# Every process running the k1s binary (servers, agents, the pods' shims), with all their
# descendants: the containers are children of their pod's shim.
k1s_pids() {
    for d in /proc/[0-9]*; do
        case "$(readlink "$d/exe" 2>/dev/null)" in
        "$K1S_BIN" | "$K1S_BIN (deleted)") echo "${d#/proc/}" ;;
        esac
    done
}
with_descendants() {
    for d in /proc/[0-9]*; do
        ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null) && echo "${d#/proc/} $ppid"
    done | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
        { parent[$1] = $2 }
        END {
            grew = 1
            while (grew) {
                grew = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
            }
            for (p in keep) print p
        }'
}
# Twice: a process forked while the first pass ran is caught by the second.
for _ in 1 2; do
    roots=$(k1s_pids)
    [ -n "$roots" ] || break
    # shellcheck disable=SC2046
    kill -9 $(with_descendants $roots) 2>/dev/null
    sleep 0.2
done

# Mounts under the run and data directories, deepest first: rootfs overlays, volumes, and the
# pinned network namespaces of the pods.
unmount_under() {
    awk -v dir="$1" '$2 == dir || index($2, dir "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r path; do umount -f "$path" 2>/dev/null || umount -l "$path"; done
}
unmount_under "$RUN_DIR"
unmount_under "$K1S_DATA_DIR"
rm -rf "$RUN_DIR"
# The IP addresses of the pods just killed: they are handed out again when k1s restarts them.
rm -rf "$K1S_DATA_DIR/agent/cni"

# The pod network: the bridge (its veths went with the namespaces).
ip link show master k1s0 2>/dev/null | awk -F': ' '/^[0-9]+:/ { sub(/@.*/, "", $2); print $2 }' |
    while read -r veth; do ip link delete "$veth" 2>/dev/null; done
ip link delete k1s0 2>/dev/null

# iptables: the K1S- chains, and the hostPort rules the portmap plugin wrote for the k1s
# network (its comment names it); other programs' rules stay.
for xt in iptables ip6tables; do
    command -v "$xt-save" >/dev/null 2>&1 || continue
    rules=$("$xt-save" 2>/dev/null) || continue
    printf '%s\n' "$rules" | grep -q -e 'K1S-' -e 'name: \\"k1s\\"' || continue
    printf '%s\n' "$rules" | awk '
        /K1S-/ || /name: \\"k1s\\"/ { if ($1 == "-A" && $0 ~ /-j CNI-DN-/) { for (i = 1; i < NF; i++) if ($i == "-j") gone[$(i + 1)] = 1 } next }
        { kept[++n] = $0 }
        END {
            for (i = 1; i <= n; i++) {
                split(kept[i], f, " ")
                chain = f[1] == "-A" ? f[2] : substr(f[1], 2)
                if ((f[1] == "-A" || substr(f[1], 1, 1) == ":") && (chain in gone)) continue
                print kept[i]
            }
        }' | "$xt-restore"
done

# The service proxy's table.
command -v nft >/dev/null 2>&1 && nft delete table ip k1s 2>/dev/null
exit 0
EOF
    chmod 0755 "$KILLALL"
}

# --- k1s-uninstall.sh ---
write_uninstall() {
    info "writing $UNINSTALL"
    cat >"$UNINSTALL" <<EOF
#!/bin/sh
# Removes k1s from this host: stops it and its containers (k1s-killall.sh), then removes its
# service, binary, configuration and all its data.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
K1S_DATA_DIR=\${K1S_DATA_DIR:-${DATA_DIR}}
export K1S_DATA_DIR
SYSTEM_NAME=${SYSTEM_NAME}
UNIT=${UNIT}
ENV_FILE=${ENV_FILE}
SYSTEMD_DIR=${SYSTEMD_DIR}
CONFIG_DIR=${CONFIG_DIR}
BIN_DIR=${BIN_DIR}
EOF
    cat >>"$UNINSTALL" <<'EOF'

"$BIN_DIR/k1s-killall.sh"

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable "$SYSTEM_NAME" >/dev/null 2>&1
    systemctl reset-failed "$SYSTEM_NAME" >/dev/null 2>&1
fi
rm -f "$UNIT" "$ENV_FILE"
command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] && systemctl daemon-reload

# Another k1s service (a server beside an agent) keeps the binary and the data.
for other in "$SYSTEMD_DIR"/k1s*.service; do
    if [ -e "$other" ]; then
        echo "$other is still installed: keeping k1s's binary and data"
        rm -f "$0"
        exit 0
    fi
done

# The data, unless something is still mounted in it (then the mount is named and kept).
if awk -v dir="$K1S_DATA_DIR" 'index($2, dir "/") == 1 || $2 == dir { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "still mounted under $K1S_DATA_DIR, not removed:" >&2
    awk -v dir="$K1S_DATA_DIR" 'index($2, dir "/") == 1 || $2 == dir { print "  " $2 }' /proc/self/mounts >&2
else
    rm -rf "$K1S_DATA_DIR"
fi
rm -rf "$CONFIG_DIR"
rm -f "$BIN_DIR/k1s" "$BIN_DIR/k1s-killall.sh" "$0"
EOF
    chmod 0755 "$UNINSTALL"
}

# --- the service ---
# Each argument in double quotes for systemd's ExecStart: backslash and quote escaped, `%`
# and `$` doubled so systemd takes them literally.
systemd_args() {
    for arg in "$@"; do
        printf ' "%s"' "$(printf '%s' "$arg" | sed -e 's/[\\"]/\\&/g' -e 's/%/%%/g' -e 's/\$/$$/g')"
    done
}
write_service() {
    mkdir -p "$SYSTEMD_DIR" "$CONFIG_DIR"
    info "writing $ENV_FILE"
    (umask 077 && env | grep -E '^(K1S_[A-Z0-9_]*|NO_PROXY|HTTP_PROXY|HTTPS_PROXY|no_proxy|http_proxy|https_proxy)=' >"$ENV_FILE" || true)
    if [ "$DATA_DIR" != /var/lib/k1s ] && ! grep -q '^K1S_DATA_DIR=' "$ENV_FILE"; then
        echo "K1S_DATA_DIR=$DATA_DIR" >>"$ENV_FILE"
    fi
    info "writing $UNIT"
    # KillMode=process: stopping or restarting k1s never stops the pods' shims and containers.
    cat >"$UNIT" <<EOF
[Unit]
Description=k1s: Kubernetes in one small binary
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
EnvironmentFile=-${ENV_FILE}
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${BIN_DIR}/k1s$(systemd_args "$@")
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
EOF
}

start_service() {
    if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
        warn "systemd is not running here: start k1s yourself, e.g. '${BIN_DIR}/k1s $*'"
        return 0
    fi
    [ "${INSTALL_K1S_SKIP_ENABLE:-false}" = true ] && return 0
    systemctl daemon-reload
    systemctl enable "$SYSTEM_NAME" >/dev/null 2>&1
    [ "${INSTALL_K1S_SKIP_START:-false}" = true ] && return 0
    info "starting $SYSTEM_NAME"
    systemctl restart "$SYSTEM_NAME"
}

if ! grep -qs memory /sys/fs/cgroup/cgroup.controllers &&
    ! awk '$1 == "memory" && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups 2>/dev/null; then
    warn "no memory cgroup: add 'cgroup_memory=1 cgroup_enable=memory' to the kernel command line (/boot/cmdline.txt on a Raspberry Pi)"
fi
install_deps
install_binary
write_killall
write_uninstall
write_service "$@"
start_service "$@"
info "done: the server writes the admin kubeconfig (/etc/k1s/k1s.yaml unless --write-kubeconfig) once ready; remove k1s with $UNINSTALL"

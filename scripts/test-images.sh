#!/bin/sh
# Build small test images without the internet, from Debian's busybox-static, into an OCI
# layout under the directory given as argument ($1/oci), plus import tarballs:
#   busybox  - one layer: /bin/busybox and its applet symlinks, /etc/passwd, /tmp
#   layered  - busybox layer + a second layer that deletes /etc/gone.txt (whiteout), replaces
#              /data with an opaque dir, and adds a hardlink pair /hl/a == /hl/b
#   multi    - an index with linux/amd64 and linux/arm64 manifests (same busybox layer,
#              configs differ by architecture; the arm64 one is never run)
#   $1/busybox-docker.tar  docker-archive of busybox tagged example.com/imported/busybox:v1
#   $1/layered-oci.tar     OCI archive of layered named example.com/imported/layered:v2
# Idempotent: a stamp file makes reruns instant. Needs busybox-static, skopeo, GNU tar,
# gzip, sha256sum (installs the Debian packages when run as root and they are missing).
set -eu

out=${1:?usage: test-images.sh OUTPUT_DIR}
stamp="$out/.complete-v2"
[ -f "$stamp" ] && exit 0

need=""
[ -x /bin/busybox ] || need="$need busybox-static"
command -v skopeo >/dev/null 2>&1 || need="$need skopeo"
command -v docker-registry >/dev/null 2>&1 || need="$need docker-registry"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need >/dev/null
    else
        echo "test-images.sh: missing packages:$need" >&2
        exit 1
    fi
fi

ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
oci="$work/oci"
mkdir -p "$oci/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"

# put FILE -> prints "sha256:<hex> <size>" and stores FILE as a blob.
put() {
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(wc -c <"$1" | tr -d ' ')
    cp "$1" "$oci/blobs/sha256/$hex"
    echo "sha256:$hex $size"
}

# layer DIR NAME -> builds NAME.tar(.gz) from DIR; sets L_DIGEST L_SIZE L_DIFFID
layer() {
    tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
        --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$1" -cf "$work/$2.tar" .
    L_DIFFID="sha256:$(sha256sum "$work/$2.tar" | cut -d' ' -f1)"
    gzip -n -9 -c "$work/$2.tar" >"$work/$2.tar.gz"
    set -- $(put "$work/$2.tar.gz")
    L_DIGEST=$1
    L_SIZE=$2
}

# config ARCH NAME DIFFIDS_JSON -> sets C_DIGEST C_SIZE
config() {
    cat >"$work/$2.config.json" <<EOF
{"architecture":"$1","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","K1S_TEST=$2"],"Cmd":["sh"],"WorkingDir":"/","User":"0:0"},"rootfs":{"type":"layers","diff_ids":[$3]},"history":[{"created_by":"k1s test-images.sh"}]}
EOF
    set -- $(put "$work/$2.config.json")
    C_DIGEST=$1
    C_SIZE=$2
}

# manifest NAME LAYERS_JSON -> sets M_DIGEST M_SIZE (uses C_DIGEST C_SIZE)
manifest() {
    cat >"$work/$1.manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$C_DIGEST","size":$C_SIZE},"layers":[$2]}
EOF
    set -- $(put "$work/$1.manifest.json")
    M_DIGEST=$1
    M_SIZE=$2
}

gzl() { printf '{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}' "$1" "$2"; }

# Base layer: busybox and its applets.
base="$work/base"
mkdir -p "$base/bin" "$base/etc" "$base/tmp" "$base/data" "$base/root"
cp /bin/busybox "$base/bin/busybox"
chmod 0755 "$base/bin/busybox"
for a in sh echo sleep cat ls nc wget httpd id env true false ps mkdir rm touch grep head \
         hostname test printf stat ln readlink nslookup awk sed; do
    ln -s busybox "$base/bin/$a"
done
chmod 1777 "$base/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$base/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$base/etc/group"
echo gone >"$base/etc/gone.txt"
echo old >"$base/data/old.txt"
layer "$base" base
B_DIGEST=$L_DIGEST B_SIZE=$L_SIZE B_DIFFID=$L_DIFFID

# Second layer: whiteout, opaque dir, hardlinks.
top="$work/top"
mkdir -p "$top/etc" "$top/data" "$top/hl"
: >"$top/etc/.wh.gone.txt"
: >"$top/data/.wh..wh..opq"
echo new >"$top/data/new.txt"
echo linked >"$top/hl/a"
ln "$top/hl/a" "$top/hl/b"
layer "$top" top
T_DIGEST=$L_DIGEST T_SIZE=$L_SIZE T_DIFFID=$L_DIFFID

config "$ARCH" busybox "\"$B_DIFFID\""
manifest busybox "$(gzl "$B_DIGEST" "$B_SIZE")"
BUSYBOX="$M_DIGEST $M_SIZE"

config "$ARCH" layered "\"$B_DIFFID\",\"$T_DIFFID\""
manifest layered "$(gzl "$B_DIGEST" "$B_SIZE"),$(gzl "$T_DIGEST" "$T_SIZE")"
LAYERED="$M_DIGEST $M_SIZE"

config amd64 multi-amd64 "\"$B_DIFFID\""
manifest multi-amd64 "$(gzl "$B_DIGEST" "$B_SIZE")"
MA="$M_DIGEST $M_SIZE"
config arm64 multi-arm64 "\"$B_DIFFID\""
manifest multi-arm64 "$(gzl "$B_DIGEST" "$B_SIZE")"
MB="$M_DIGEST $M_SIZE"
set -- $MA $MB
cat >"$work/multi.index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$1","size":$2,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$3","size":$4,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}
EOF
set -- $(put "$work/multi.index.json")
MULTI="$1 $2"

entry() { # MEDIATYPE DIGEST SIZE NAME
    printf '{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}' "$1" "$2" "$3" "$4"
}
set -- $BUSYBOX $LAYERED $MULTI
{
    printf '{"schemaVersion":2,"manifests":['
    entry application/vnd.oci.image.manifest.v1+json "$1" "$2" busybox
    printf ','
    entry application/vnd.oci.image.manifest.v1+json "$3" "$4" layered
    printf ','
    entry application/vnd.oci.image.index.v1+json "$5" "$6" multi
    printf ']}\n'
} >"$oci/index.json"

skopeo --insecure-policy copy -q "oci:$oci:busybox" \
    "docker-archive:$work/busybox-docker.tar:example.com/imported/busybox:v1"
skopeo --insecure-policy copy -q "oci:$oci:layered" \
    "oci-archive:$work/layered-oci.tar:example.com/imported/layered:v2"

rm -rf "$out/oci" "$out/busybox-docker.tar" "$out/layered-oci.tar"
mv "$oci" "$out/oci"
mv "$work/busybox-docker.tar" "$work/layered-oci.tar" "$out/"
touch "$stamp"

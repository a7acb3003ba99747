#!/bin/bash
# Builds the k8s lab's binaries and images into a cache outside the checkout, keyed by version:
#   $CACHE/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kube-proxy,kubectl,coredns}
#   $CACHE/images/{pause,etcd}.tar (docker-archive tarballs for `ctr images import`)
# Each artefact is built only when missing, so a warm run costs seconds (docs/hosted.md).
# Usage: build.sh CACHE K8S_VERSION COREDNS_VERSION ETCD_BIN_DIR
set -euo pipefail
cache=$1 k8s=$2 coredns=$3 etcdbin=$4
GO=${GO:-go}
minor=${k8s#v1.}; minor=${minor%%.*}
staging=v0.${k8s#v1.}
mkdir -p "$cache/bin" "$cache/images" "$cache/src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
need=()
for c in "${cmds[@]}"; do [ -x "$cache/bin/$c" ] || need+=("$c"); done
if [ ${#need[@]} -gt 0 ] || [ ! -f "$cache/images/pause.tar" ]; then
  # The k8s.io/kubernetes module zip has no staging/src: its `replace => ./staging/...` lines cannot
  # apply, so a scratch module replaces each staging module by its published v0.MINOR.PATCH.
  src=$cache/src/kubernetes
  mkdir -p "$src" && cd "$src"
  if [ ! -f go.mod ]; then
    gomod=$($GO mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    {
      printf 'module k8slabbuild\n\ngo 1.22\n\nrequire k8s.io/kubernetes %s\n\n' "$k8s"
      sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/.*#replace \1 => \1 '"$staging"'#p' "$gomod"
    } > go.mod.tmp
    printf '//go:build tools\n\npackage tools\n\nimport (\n' > tools.go
    for c in "${cmds[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c" >> tools.go; done
    printf ')\n' >> tools.go
    mv go.mod.tmp go.mod
    $GO mod tidy
  fi
  if [ ${#need[@]} -gt 0 ]; then
    v=k8s.io/component-base/version c=k8s.io/client-go/pkg/version
    x="-X $v.gitVersion=$k8s -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    x="$x -X $c.gitVersion=$k8s -X $c.gitMajor=1 -X $c.gitMinor=$minor -X $c.gitTreeState=clean"
    pkgs=(); for c in "${need[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    nice -n 10 $GO build -p=1 -trimpath -ldflags "-s -w $x" -o "$cache/bin/.new/" "${pkgs[@]}"
    for c in "${need[@]}"; do mv "$cache/bin/.new/$c" "$cache/bin/$c"; done
    rmdir "$cache/bin/.new"
  fi
fi

if [ ! -x "$cache/bin/coredns" ]; then
  # CoreDNS with only the plugins cluster DNS needs (coremain keeps the full directive order).
  src=$cache/src/coredns
  mkdir -p "$src" && cd "$src"
  printf 'module corednsbuild\n\ngo 1.22\n' > go.mod
  cat > main.go <<'GO'
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
GO
  $GO get "github.com/coredns/coredns@$coredns"
  $GO mod tidy
  nice -n 10 $GO build -p=1 -trimpath -ldflags '-s -w' -o "$cache/bin/coredns.new" . && mv "$cache/bin/coredns.new" "$cache/bin/coredns"
fi

# Images are docker-archive tarballs written by hand: one layer, a config naming its diff_id, a
# manifest.json with the tag kubelet and the pods use (imagePullPolicy: Never).
image() { # name tag rootfs-dir entrypoint-json
  local name=$1 tag=$2 root=$3 entry=$4 d
  d=$(mktemp -d)
  tar -C "$root" --owner=0 --group=0 --numeric-owner -cf "$d/layer.tar" .
  local diff; diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/usr/local/bin:/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entry" "$diff" > "$d/config.json"
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$tag" > "$d/manifest.json"
  tar -C "$d" -cf "$cache/images/$name.tar.new" config.json manifest.json layer.tar
  mv "$cache/images/$name.tar.new" "$cache/images/$name.tar"
  rm -rf "$d"
}

if [ ! -f "$cache/images/pause.tar" ]; then
  dir=$($GO mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  r=$(mktemp -d)
  gcc -Os -static -o "$r/pause" "$dir/build/pause/linux/pause.c"
  image pause registry.k8s.io/pause:3.10 "$r" '["/pause"]'
  rm -rf "$r"
fi

if [ ! -f "$cache/images/etcd.tar" ]; then
  r=$(mktemp -d)
  mkdir -p "$r/usr/bin" "$r/bin" "$r/tmp" "$r/var/lib" "$r/etc"
  cp "$etcdbin/etcd" "$etcdbin/etcdctl" "$etcdbin/etcdutl" "$r/usr/bin/"
  cp /bin/busybox "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  # busybox has no bash applet: the seed's data-access pod runs /usr/bin/bash -c.
  printf '#!/bin/sh\nexec /bin/sh "$@"\n' > "$r/usr/bin/bash" && chmod 0755 "$r/usr/bin/bash"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
  image etcd etcdops.local/etcd:lab "$r" '["/bin/sh"]'
  rm -rf "$r"
fi
echo "k8s lab binaries and images for $k8s are in $cache ($(du -sh "$cache" | cut -f1))"

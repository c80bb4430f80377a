#!/bin/sh
# build.sh [OUTDIR]: the release artifacts for every Raspberry Pi and PC:
# static binaries (CGO_ENABLED=0, -trimpath), .deb packages (nfpm) and
# .tar.gz archives, for linux amd64, arm64 and armhf. armhf is built GOARM=6:
# Raspberry Pi OS armhf runs on the ARMv6 Pi Zero/1, where a GOARM=7 binary
# dies with "Illegal instruction". `make package` runs it into dist/.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Reproducible archives: file times from the last commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
# Debian versions start with a digit: v1.2.0-3-gabc -> 1.2.0+3.gabc; an
# untagged tree is 0.0.0~git<commit time>.<commit>: later commits sort later,
# and any release sorts after them.
if echo "$VERSION" | grep -Eq '^v?[0-9]+\.[0-9]+'; then
	DEB_VERSION=$(echo "${VERSION#v}" | sed 's/-/+/; s/-/./g')
else
	DEB_VERSION="0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).$(echo "$VERSION" | tr -- '-' '.')"
fi

echo "building nfpm (pinned in packaging/tools/go.mod)"
(cd packaging/tools && CGO_ENABLED=0 GOOS= GOARCH= "$GO" build -o "$OUT/.nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm)

for target in amd64 arm64 armhf; do
	case $target in
	amd64) goarch=amd64 goarm= ;;
	arm64) goarch=arm64 goarm= ;;
	armhf) goarch=arm goarm=6 ;;
	esac
	dir="$OUT/linux-$target"
	mkdir -p "$dir"
	echo "building linux/$target${goarm:+ GOARM=$goarm}"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.buildCommit=$COMMIT" -o "$dir/edgehook" ./cmd/edgehook

	# nfpm cannot take the binary's path from the environment: stage it.
	pkg="$OUT/.pkg-$target"
	rm -rf "$pkg"
	mkdir -p "$pkg"
	cp -R configs packaging README.md "$pkg/"
	cp "$dir/edgehook" "$pkg/edgehook"
	(cd "$pkg" && NFPM_ARCH=$target DEB_VERSION=$DEB_VERSION \
		"$OUT/.nfpm" package --config packaging/nfpm.yaml --packager deb --target "$OUT/" >/dev/null)
	rm -rf "$pkg"

	# The archive: binary, configs, example rules and the unit, for those
	# who do not use dpkg (edgehook service install sets it up from here).
	name="edgehook-$VERSION-linux-$target"
	stage="$OUT/.stage/$name"
	rm -rf "$OUT/.stage"
	mkdir -p "$stage/rules"
	cp "$dir/edgehook" "$stage/"
	cp configs/edgehook.toml "$stage/edgehook.toml"
	cp configs/default.env "$stage/edgehook.default"
	cp configs/rules/*.toml "$stage/rules/"
	cp packaging/systemd/edgehook.service README.md "$stage/"
	tar -C "$OUT/.stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
		-czf "$OUT/$name.tar.gz" "$name"
	rm -rf "$OUT/.stage"
done
rm -f "$OUT/.nfpm"
echo "artifacts in $OUT:"
cd "$OUT" && ls -l ./*.deb ./*.tar.gz linux-*/edgehook

#!/bin/sh
# make package: for each architecture in PKG_ARCHS, a static mctun and its .deb and .rpm in
# DIST, built by nfpm from packaging/nfpm.yaml with nothing but Go. The man pages, the
# completion scripts and the example config are written by the host's build of mctun (they
# are the same for every architecture). Environment, from the Makefile:
#   GO PKG_VERSION RPM_VERSION RPM_RELEASE PKG_ARCHS DIST MAINTAINER HOMEPAGE
set -eu
cd "$(dirname "$0")/.."

BUILD=$DIST/build
rm -rf "$BUILD"
mkdir -p "$BUILD" "$DIST"
# Reproducible: file times, the man pages' date and the changelog's are the commit's.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

build() { # GOARCH OUTPUT
	CGO_ENABLED=0 GOARCH=$1 $GO build -trimpath -ldflags "-s -w -X main.version=$PKG_VERSION" -o "$2" ./cmd/mctun
}

build "$($GO env GOHOSTARCH)" "$BUILD/host/mctun"
mctun=$BUILD/host/mctun
$mctun __doc mctun.8 | gzip -9n >"$BUILD/mctun.8.gz"
$mctun __doc mctun.toml.5 | gzip -9n >"$BUILD/mctun.toml.5.gz"
$mctun __doc mctun.toml >"$BUILD/mctun.toml"
for sh in bash zsh fish; do
	$mctun completion $sh >"$BUILD/completion.$sh"
done
gzip -9n <README.md >"$BUILD/README.md.gz"
{
	echo "mctun ($PKG_VERSION) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
	echo
	echo " -- $MAINTAINER  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$BUILD/changelog.gz"
# rpm's: nfpm takes one from a file it is told of, which it would also put in the deb, under
# the name of a non-native package's; so only the rpm's config names it.
cat >"$BUILD/changelog.yml" <<END
- semver: $RPM_VERSION-$RPM_RELEASE
  date: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  packager: $MAINTAINER
  changes:
    - note: Built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown).
END
{
	cat packaging/nfpm.yaml
	echo "changelog: $BUILD/changelog.yml"
} >"$BUILD/nfpm-rpm.yaml"
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: mctun"
	echo
	echo "Files: *"
	echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE)"
	echo "License: Expat"
	sed -n '/^Permission/,$p' LICENSE | sed -e 's/^$/./' -e 's/^/ /'
} >"$BUILD/copyright"

export BUILD MAINTAINER HOMEPAGE
for arch in $PKG_ARCHS; do
	build "$arch" "$BUILD/$arch/mctun"
	ARCH=$arch VERSION=$PKG_VERSION RELEASE= \
		$GO tool nfpm package -f packaging/nfpm.yaml -p deb -t "$DIST/mctun_${PKG_VERSION}_$arch.deb"
	rpmarch=$arch
	case $arch in
	amd64) rpmarch=x86_64 ;;
	arm64) rpmarch=aarch64 ;;
	esac
	ARCH=$arch VERSION=$RPM_VERSION RELEASE=$RPM_RELEASE \
		$GO tool nfpm package -f "$BUILD/nfpm-rpm.yaml" -p rpm -t "$DIST/mctun-$RPM_VERSION-$RPM_RELEASE.$rpmarch.rpm"
done

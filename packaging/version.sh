#!/bin/sh
# The package version of the commit checked out, from git describe, as both dpkg and rpm
# sort it (make package; the Makefile says why):
#   tagged v1.2                        1.2
#   3 commits after v1.2               1.2+3.gabc1234      (rpm: version 1.2, release 1.3.gabc1234)
#   tagged v1.3-rc1                    1.3~rc1             (before 1.3)
#   no tag (git describe: cc8c16b)     0.0.0~git20260301123456.cc8c16b  (the commit's UTC date)
#   with uncommitted changes           the above, then .dirty
set -eu
cd "$(dirname "$0")/.."

if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "0.0.0~unknown"
	exit 0
fi
dirty=""
if ! git diff --quiet HEAD -- 2>/dev/null; then
	dirty=".dirty"
fi
if desc=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
	# v1.2-3-gabc1234: tag, count, hash; a tag's own dashes (v1.3-rc1) sort before it.
	hash=${desc##*-}
	rest=${desc%-*}
	count=${rest##*-}
	tag=${rest%-*}
	base=$(printf '%s' "${tag#v}" | tr -- '-' '~' | tr -cd 'A-Za-z0-9.~+')
	if [ "$count" = 0 ]; then
		echo "$base$dirty"
	else
		echo "$base+$count.$hash$dirty"
	fi
	exit 0
fi
date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
echo "0.0.0~git$date.$(git rev-parse --short HEAD)$dirty"

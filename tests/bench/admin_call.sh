#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes one signed call to the manager with curl, for scripts and benchmarks.
# usage: BACKEND_ENDPOINT=.. BACKEND_ACCESS_KEY=.. BACKEND_SECRET_KEY=.. admin_call.sh METHOD PATH [JSON]
set -eu
method=$1 path=$2 body=${3:-}
hostport=${BACKEND_ENDPOINT#http://}
hostport=${hostport%/}
set -- -sS -X "$method"
while IFS= read -r h; do set -- "$@" -H "$h"; done <<HDRS
$(sh "$(dirname "$0")/sign.sh" "$method" "$path" "$hostport" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY")
HDRS
[ -n "$body" ] && set -- "$@" --data-binary "$body"
curl "$@" "http://$hostport$path"

#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Prints the headers of a Backend.AI-signed request (api-contract §1), one per line,
# computed with the openssl command line so benchmarks need no client library.
# usage: sign.sh METHOD PATH HOST ACCESS_KEY SECRET_KEY [CONTENT_TYPE] [VERSION]
# The Date header it uses stays acceptable to the manager for 15 minutes.
set -eu
method=$1 path=$2 host=$3 ak=$4 sk=$5
ctype=${6:-application/json}
version=${7:-v8.20240915}
date=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
ymd=$(date -u +%Y%m%d)
hmac_key() { printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "key:$1" -r | cut -d' ' -f1; }
hmac_hex() { printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -r | cut -d' ' -f1; }
k_date=$(hmac_key "$sk" "$ymd")
k_sign=$(hmac_hex "$k_date" "$host")
body_hash=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
sts=$(printf '%s\n%s\n%s\nhost:%s\ncontent-type:%s\nx-backendai-version:%s\n%s' \
    "$method" "$path" "$date" "$host" "$ctype" "$version" "$body_hash")
sig=$(hmac_hex "$k_sign" "$sts")
echo "Date: $date"
echo "Content-Type: $ctype"
echo "X-BackendAI-Version: $version"
echo "Authorization: BackendAI signMethod=HMAC-SHA256, credential=$ak:$sig"

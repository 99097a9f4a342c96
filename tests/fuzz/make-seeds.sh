#!/usr/bin/env bash
# Rebuilds the seeds that come from the simulator: real answers for fuzz_api_answer (two prefix
# bytes: the reader, the status index of fuzz_api_answer.cpp), real downloads for
# fuzz_certificates, and the requests of fuzz_sim_request (raw HTTP/1.1 as the agent sends them,
# with the fuzz target's API key). Run by hand when the simulator's answers change:
#   QSCD_CERTCENTRAL_SIM=build/tests/certcentral-sim/certcentral-sim tests/fuzz/make-seeds.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
. "$here/../support/certcentral-sim.sh"
work=$(mktemp -d)
QSCD_SIM_KEY=fuzz-seed-key
qscd_sim_start "$work/sim" --auto-approve
trap 'qscd_sim_stop; rm -rf "$work"' EXIT
csr_json=$(jq -Rs . <"$corpus/fuzz_csr_lint/pkio-server.ec256.csr.pem")
ssl_csr_json=$(jq -Rs . <"$corpus/fuzz_csr_lint/generic.ec256.csr.pem")

# call NAME SELECTOR STATUS_INDEX METHOD PATH [BODY]: one answer as a fuzz_api_answer seed.
call() {
  local name=$1 selector=$2 status=$3 method=$4 path=$5 body=${6:-}
  local args=(-sS --cacert "$QSCD_SIM_CA" -H "X-DC-DEVKEY: $QSCD_SIM_KEY" -X "$method" -o "$work/body")
  [ -n "$body" ] && args+=(-H "Content-Type: application/json" --data-binary "$body")
  curl "${args[@]}" "$QSCD_SIM_URL$path"
  { printf "\\x$(printf %02x "$selector")\\x$(printf %02x "$status")"; cat "$work/body"; } >"$corpus/fuzz_api_answer/$name"
}
# Status indexes in fuzz_api_answer.cpp: 0 200, 1 201, 2 204, 3 400, 4 401, 6 404, 8 429, 10 503.
call organizations 3 0 GET /organization
call submit-ssl 2 1 POST /order/certificate/ssl_basic \
  "{\"organization\":{\"id\":112233},\"payment_method\":\"balance\",\"order_validity\":{\"years\":1},\"certificate\":{\"signature_hash\":\"sha256\",\"common_name\":\"example.com\",\"dns_names\":[\"example.com\"],\"csr\":$ssl_csr_json}}"
order=$(tail -c +3 "$corpus/fuzz_api_answer/submit-ssl" | jq -r .id)
call order-info-issued 0 0 GET "/order/certificate/$order"
certificate=$(tail -c +3 "$corpus/fuzz_api_answer/order-info-issued" | jq -r .certificate.id)
call order-list 1 0 GET "/order/certificate?limit=2"
call download-pem-all 4 0 GET "/certificate/$certificate/download/format/pem_all"
call error-404 0 6 GET /order/certificate/999999
call error-400-submit 2 3 POST /order/certificate/eu_eseal '{"organization":{"id":112233}}'
curl -sS --cacert "$QSCD_SIM_CA" -o "$work/body" "$QSCD_SIM_URL/organization"
{ printf '\x03\x04'; cat "$work/body"; } >"$corpus/fuzz_api_answer/error-401"
printf '\x05\x02' >"$corpus/fuzz_api_answer/empty-204"
printf '\x00\x0a<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>' \
  >"$corpus/fuzz_api_answer/error-503-html"

for format in pem_all p7b cer pem_noroot; do
  curl -sS --cacert "$QSCD_SIM_CA" -H "X-DC-DEVKEY: $QSCD_SIM_KEY" -o "$corpus/fuzz_certificates/$format" \
    "$QSCD_SIM_URL/certificate/$certificate/download/format/$format"
done
openssl pkcs7 -in "$corpus/fuzz_certificates/p7b" -outform DER -out "$corpus/fuzz_certificates/p7b.der"

# request NAME METHOD PATH [BODY]: raw HTTP as a fuzz_sim_request seed.
request() {
  local name=$1 method=$2 path=$3 body=${4:-}
  {
    printf '%s /services/v2%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: qscd-agent/0.1.0\r\nAccept: application/json\r\nX-DC-DEVKEY: fuzz-sim-api-key\r\n' "$method" "$path"
    if [ -n "$body" ]; then
      printf 'Content-Type: application/json\r\nContent-Length: %d\r\n' "${#body}"
    fi
    printf '\r\n%s' "$body"
  } >"$corpus/fuzz_sim_request/$name"
}
request organizations GET /organization
request submit-ssl POST /order/certificate/ssl_basic \
  "{\"organization\":{\"id\":112233},\"payment_method\":\"balance\",\"order_validity\":{\"years\":1},\"certificate\":{\"signature_hash\":\"sha256\",\"common_name\":\"example.com\",\"dns_names\":[\"example.com\"],\"csr\":$ssl_csr_json}}"
request submit-server POST /order/certificate/pkio_private_services_server \
  "{\"organization\":{\"id\":112233},\"csa_agreed_to\":true,\"payment_method\":\"balance\",\"order_validity\":{\"years\":1},\"certificate\":{\"signature_hash\":\"sha256\",\"common_name\":\"e2e.example.nl\",\"dns_names\":[\"e2e.example.nl\"],\"oin\":\"00000001003214345000\",\"csr\":$csr_json}}"
request submit-eseal-qscd POST /order/certificate/eu_eseal \
  '{"organization":{"id":445566},"csa_agreed_to":true,"payment_method":"balance","provisioning_method":"qscd","ship_info":{"name":"Z","addr1":"Rue 1","city":"Gent","zip":"9000","country":"be","method":"STANDARD"},"order_validity":{"years":1},"certificate":{"signature_hash":"sha256"}}'
request order-info GET /order/certificate/100001
request order-list GET '/order/certificate?filters%5Bstatus%5D=issued&filters%5Bcommon_name%5D=example.com&offset=0&limit=10'
request status-changes GET /order/certificate/status-changes
request request-list GET /request
request request-approve PUT /request/5001/status '{"status":"approved","processor_comment":"ok"}'
request cancel PUT /order/certificate/100001/status '{"status":"canceled","note":"fuzz"}'
request reissue POST /order/certificate/100001/reissue "{\"certificate\":{\"csr\":$ssl_csr_json}}"
request pickup POST /order/certificate/100003/pickup "{\"csr\":$csr_json}"
request download-p7b GET /certificate/9001/download/format/p7b
request download-order GET /certificate/download/order/100001
request chain GET /certificate/9001/chain
request revoke PUT /certificate/9001/revoke '{"comments":"fuzz"}'
request product GET /product/eu_eseal

# bash completion for qscd-agent
# tests/package/test-help-coverage.sh fails when this drifts from the binary's --help.
_qscd_agent() {
  local cur prev words cword
  _init_completion || return
  local commands="tokens token keygen csr order orgs provision renew watch install export jobs"
  local global="--module --config --state-dir --api-url --ca-file --api-key-source --json -v --verbose -q --quiet --help --version"
  local login="--token --pin-source --allow-final-try"
  case "$prev" in
    --module|--config|--ca-file|--cert|--out|--subject-file|--order-file|--trust|--csr)
      _filedir; return ;;
    --state-dir) _filedir -d; return ;;
    --key-type) COMPREPLY=($(compgen -W "rsa:2048 rsa:3072 rsa:4096 ec:p256 ec:p384" -- "$cur")); return ;;
    --profile) COMPREPLY=($(compgen -W "be-ebox pkio-server pkio-eseal generic" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "pem der p7b" -- "$cur")); return ;;
    --pin-source|--sign-pin-source|--so-pin-source|--new-pin-source|--api-key-source|--init-code-source)
      COMPREPLY=($(compgen -W "prompt pinentry fd: file: env:" -- "$cur")); compopt -o nospace; return ;;
  esac
  local i sub=""
  for ((i = 1; i < cword; i++)); do
    case " $commands " in *" ${words[i]} "*) sub=${words[i]}; break ;; esac
  done
  local words_for
  case "$sub" in
    "") words_for="$commands" ;;
    tokens) words_for="$login" ;;
    token) words_for="init change-pin unblock $login --label --force --so --so-pin-source --new-pin-source" ;;
    keygen) words_for="$login --key-type --label --id --always-authenticate --allow-duplicate-label" ;;
    csr) words_for="check $login --key --profile --subject-file --set --out --der --rsa-pss" ;;
    order) words_for="submit attach status wait --product --csr --order-file --dry-run --approve --init-code-source --timeout --interval" ;;
    orgs) words_for="" ;;
    provision) words_for="$login --profile --product --key --key-type --label --id --subject-file --set --rsa-pss --order-file --order --approve --no-wait --timeout --poll-interval --trust --expect --job --all --sign-pin-source" ;;
    renew) words_for="$login --sign-pin-source --within --all --dry-run --reuse-key --keep-old --allow-new-order --order-file --approve --no-wait --timeout --poll-interval --trust" ;;
    watch) words_for="--pin-source --allow-final-try --sign-pin-source --poll-every --run-for" ;;
    install) words_for="--key --cert --order --trust --pin-source --allow-final-try --profile --product --csr --expect" ;;
    export) words_for="--key --format --out --pin-source --allow-final-try" ;;
    jobs) words_for="show" ;;
  esac
  COMPREPLY=($(compgen -W "$words_for $global" -- "$cur"))
}
complete -F _qscd_agent qscd-agent

# bash completion for qscd-agent
_qscd_agent() {
  local cur prev words cword
  _init_completion || return
  local commands="tokens token keygen csr order orgs install provision jobs renew watch export"
  local global="--module --config --state-dir --api-url --ca-file --api-key-source --json -v -q --help --version"
  case "$prev" in
    --module|--config|--ca-file|--cert|--out|--subject-file|--order-file|--trust|--csr)
      _filedir; return ;;
    --state-dir) _filedir -d; return ;;
    --key-type) COMPREPLY=($(compgen -W "rsa:2048 rsa:3072 rsa:4096 ec:p256 ec:p384" -- "$cur")); return ;;
    --profile) COMPREPLY=($(compgen -W "be-ebox pkio-server pkio-eseal generic" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "pem der p7b" -- "$cur")); return ;;
    --pin-source|--so-pin-source|--new-pin-source|--api-key-source|--init-code-source)
      COMPREPLY=($(compgen -W "prompt pinentry fd: file: env:" -- "$cur")); compopt -o nospace; return ;;
  esac
  local i sub=""
  for ((i = 1; i < cword; i++)); do
    case " $commands " in *" ${words[i]} "*) sub=${words[i]}; break ;; esac
  done
  if [ -z "$sub" ]; then
    COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
    return
  fi
  case "$sub" in
    token) COMPREPLY=($(compgen -W "init change-pin unblock --token --label --force --so --pin-source --so-pin-source --new-pin-source $global" -- "$cur")) ;;
    order) COMPREPLY=($(compgen -W "submit attach status wait --product --csr --order-file --dry-run --timeout --approve $global" -- "$cur")) ;;
    csr) COMPREPLY=($(compgen -W "check --key --token --profile --subject-file --set --out --der --rsa-pss --pin-source $global" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "--token --key --key-type --label --id --pin-source --profile --product --subject-file --set --order --order-file --approve --no-wait --timeout --poll-interval --trust --job --all --rsa-pss --order-file --allow-final-try --cert --format --within --dry-run $global" -- "$cur")) ;;
  esac
}
complete -F _qscd_agent qscd-agent

#!/usr/bin/env bash
# The man page and the bash completion cannot drift from the CLI: every subcommand and every
# option the built binary's --help lists (for each subcommand, nested ones too) must be in the
# man page, and must be offered by the completion function at that point of a command line;
# and neither may name a subcommand or an option the binary does not have.
#   test-help-coverage.sh BINARY MAN_PAGE COMPLETION
set -euo pipefail
bin=$1 man=$2 completion=$3
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }

# "Options:" and "Subcommands:" sections of CLI11's help.
section() { awk -v s="$1:" '$0 == s {on = 1; next} /^[A-Z][a-z]*:/ {on = 0} on' ; }
options_of() { "$bin" "$@" --help | section Options | grep -oE '^ +(-[a-zA-Z],)?--[a-z0-9-]+' \
  | tr ',' '\n' | tr -d ' ' ; }
subcommands_of() { "$bin" "$@" --help | section Subcommands | awk 'NF {print $1}' ; }

# The man page as plain text: roff hyphens (\-) and font changes (\fB) gone.
plain=$(mktemp)
sed 's/\\-/-/g; s/\\f[BIRP]//g; s/"//g' "$man" >"$plain"
word() { printf '(^|[^a-z0-9-])%s([^a-z0-9-]|$)' "$1"; }
in_man() { grep -qE -- "$(word "$1")" "$plain"; }

# What the completion offers for a command line ending in an empty or "-" word.
complete_line() {
  bash -c '
    _init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]};
      words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
    _filedir() { :; }
    compopt() { :; }
    complete() { :; }
    . "$0"
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    _qscd_agent
    printf "%s\n" "${COMPREPLY[@]}"' "$completion" qscd-agent "$@"
}

all_options=$(mktemp) all_commands=$(mktemp)
trap 'rm -f "$all_options" "$all_commands" "$plain"' EXIT

walk() {  # walk PATH...: check one (sub)command, then its subcommands
  local offered opt sub
  offered=$(complete_line "$@" -)
  for opt in $(options_of "$@"); do
    echo "$opt" >>"$all_options"
    in_man "$opt" || err "man page lacks $opt (qscd-agent $* --help)"
    # -h,--help and --version are CLI11's own; the completion offers --help and --version.
    grep -qxF -- "$opt" <<<"$offered" || [ "$opt" = -h ] \
      || err "completion does not offer $opt after 'qscd-agent $* '"
  done
  offered=$(complete_line "$@" "")
  for sub in $(subcommands_of "$@"); do
    echo "$sub" >>"$all_commands"
    # An entry is a .B/.BI/.BR line naming the command path, e.g. ".BI order status ...".
    grep -E '^\.B[IR]? ' "$plain" | grep -qE -- "$(word "$(echo $* $sub)")" \
      || err "man page has no entry for 'qscd-agent ${*:+$* }$sub'"
    grep -qxF -- "$sub" <<<"$offered" || err "completion does not offer '$sub' after 'qscd-agent ${*:+$* }'"
    walk "$@" "$sub"
  done
}
walk

# The other way: nothing in the man page or the completion that the binary lacks.
for opt in $(grep -oE -- '(^|[^a-z0-9-])--?[a-z][a-z0-9-]*[a-z0-9]' "$plain" | sed 's/^[^-]*//' | grep -- '^--' | sort -u) \
           $(grep -oE '(^|[ "])--[a-z0-9-]*[a-z0-9]' "$completion" | tr -d ' "' | sort -u); do
  grep -qxF -- "$opt" "$all_options" || err "$opt is in the man page or the completion but not in the binary's --help"
done
for sub in $(sed -n 's/^ *local commands="\(.*\)"$/\1/p' "$completion"); do
  grep -qxF -- "$sub" "$all_commands" || err "the completion offers '$sub', which the binary does not have"
done

[ "$fail" -eq 0 ] || exit 1
echo "man page and completion cover $(sort -u "$all_options" | wc -l) options and $(sort -u "$all_commands" | wc -l) subcommands"

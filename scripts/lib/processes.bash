# Sourced by the bench scripts that record pids and sweep after a killed run.

# Whether pid $1 runs a command line containing $2, so a recycled pid is
# never signalled (a substring match: a path is not a pattern).
runs_with() {
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$2"* ]]
}

#!/bin/sh
# ctl.sh: the guest's control channel (a qemu guestfwd cmd: endpoint): hands one request line
# from the guest to the harness's main loop and copies the harness's answer back.
# usage (by qemu, once per guest connection): ctl.sh RUNDIR
# stdin/stdout are the guest's TCP connection.  The harness, not this script, acts on the
# request, so that every server process stays a child of the harness and is killed by PID.
run=$1
IFS= read -r request || exit 0
id=$run/ctl/$$
printf '%s\n' "$request" > "$id.tmp" && mv "$id.tmp" "$id.req"
waited=0
while [ ! -e "$id.done" ] && [ "$waited" -lt 3000 ]; do
	sleep 0.1
	waited=$((waited + 1))
done
if [ -e "$id.done" ]; then cat "$id.done"; else echo "ERR harness did not answer in 300 s"; fi

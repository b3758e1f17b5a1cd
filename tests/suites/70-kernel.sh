#!/usr/bin/env bash
# 70-kernel: the stock Debian kernel's NFS client, in a qemu VM (TCG), mounts tarnfsd and
# runs the acceptance checks of tests/kernel/checks.list (see doc/testing.md).
exec "$(dirname "$0")/../kernel/run.sh" "$@"

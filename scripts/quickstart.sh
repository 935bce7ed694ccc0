#!/usr/bin/env bash
# The quick start's first command: prepare this Debian machine, build the tiny box, add it to
# the box store from its catalog (a local registry), boot the example Vmfile and run a
# command in the VM.
set -euo pipefail
cd "$(dirname "$0")/.."
vm=./bin/run.js

bash scripts/setup-host.sh
bash boxes/build.sh tiny
$vm box add boxes/dist/vmfile/tiny.json

project=$(mktemp -d /tmp/vm-quickstart.XXXXXX)
chmod 0755 "$project"
cp Vmfile.example "$project/Vmfile"
echo "quickstart: example project in $project"
$vm up --cwd "$project"
$vm ssh --cwd "$project" -c 'echo "hello from $(hostname): $(uname -sr)"; ls /vm'
echo "quickstart: the machine is still running. Try:"
echo "  $vm status --cwd $project"
echo "  $vm ssh --cwd $project"
echo "  $vm destroy -f --cwd $project"

#!/usr/bin/env bash
# The quick start's first command: prepare this Debian machine, build the tiny box, and run
# the main job with what vm can do today.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh
bash boxes/build.sh tiny

project=$(mktemp -d /tmp/vm-quickstart.XXXXXX)
cp Vmfile.example "$project/Vmfile"
echo "quickstart: example project in $project"
./bin/run.js validate --cwd "$project"
echo "quickstart: the tiny box is in boxes/dist/vmfile/ (catalog: boxes/dist/vmfile/tiny.json)."
echo "quickstart: booting it with 'vm up' arrives with the machine commands; see README."

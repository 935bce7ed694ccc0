import {spawnSync} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'

import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {machineFixture, type MachineFixture} from '../helpers/vm-cli.js'

// The tiny box has no Python, so the playbooks use `raw` tasks without fact gathering: they
// still go through the generated inventory, the machine's SSH settings and become (sudo).
const hasAnsible = spawnSync('ansible-playbook', ['--version']).status === 0

describe.skipIf(!hasAnsible)('ansible provisioner with the tiny box', () => {
  let fixture: MachineFixture
  let project: string
  const run = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => fixture.run(args, extraEnv)
  const guest = (command: string) => fixture.guest(command)

  beforeAll(() => {
    fixture = machineFixture('ansible', 'tiny')
    project = fixture.project
    mkdirSync(path.join(project, 'playbooks'))
    writeFileSync(
      path.join(project, 'playbooks/site.yml'),
      [
        '- hosts: all',
        '  gather_facts: false',
        '  tasks:',
        '    - name: write a file as root',
        '      ansible.builtin.raw: "mkdir -p /etc/demo && echo \'{{ greeting }} from {{ inventory_hostname }}\' > /etc/demo/motd && id -u > /tmp/ansible-uid"',
        '',
      ].join('\n'),
    )
    writeFileSync(
      path.join(project, 'playbooks/plain.yml'),
      ['- hosts: all', '  gather_facts: false', '  tasks:', '    - ansible.builtin.raw: id -un > /tmp/ansible-user', ''].join('\n'),
    )
    writeFileSync(
      path.join(project, 'playbooks/broken.yml'),
      ['- hosts: all', '  gather_facts: false', '  tasks:', '    - ansible.builtin.raw: echo about to fail; exit 3', ''].join('\n'),
    )
    // ansible-playbook runs from the project directory, so the project's ansible.cfg applies.
    writeFileSync(path.join(project, 'ansible.cfg'), '[defaults]\nstdout_callback = minimal\n')
    writeFileSync(
      path.join(project, 'Vmfile'),
      [
        'box: vmfile/tiny',
        'cpus: 1',
        'memory: 256',
        'synced_folders: false',
        'provision:',
        '  - {type: ansible, name: site, playbook: playbooks/site.yml, become: true, extra_vars: {greeting: "hello world"}}',
        '  - {type: ansible, name: plain, playbook: playbooks/plain.yml}',
        '  - {type: ansible, name: broken, playbook: playbooks/broken.yml, run: never}',
        '',
      ].join('\n'),
    )
  })

  afterAll(() => fixture.cleanup())

  it('vm up runs the playbooks over the machine SSH settings, with become and extra vars', async () => {
    const up = await run(['up'])
    expect(up.code, up.stderr).toBe(0)
    expect(up.stdout).toContain('provisioning: site (ansible)')
    expect(up.stdout).toContain('[default] default | CHANGED | rc=0') // the minimal callback of ansible.cfg
    expect(await guest('cat /etc/demo/motd; stat -c %U /etc/demo/motd; cat /tmp/ansible-uid')).toBe('hello world from default\nroot\n0')
    expect(await guest('cat /tmp/ansible-user')).toBe('vm')
  })

  it('a failing playbook makes vm provision exit non-zero and names the provisioner', async () => {
    const provision = await run(['provision', '--provision-with', 'broken'])
    expect(provision.code).toBe(1)
    expect(provision.stdout).toContain('[default] about to fail')
    expect(provision.stderr).toContain('Provisioner "broken" (ansible) of machine default failed with exit status 2')
  })

  it('without ansible-playbook on PATH the error says what to install', async () => {
    const bin = path.join(fixture.home, 'empty-bin')
    mkdirSync(bin, {recursive: true})
    const provision = await run(['provision', '--provision-with', 'plain'], {PATH: bin})
    expect(provision.code).toBe(1)
    expect(provision.stderr).toContain('Provisioner "plain" (ansible) needs ansible-playbook, which is not installed on this host')
    expect(provision.stderr).toContain('apt-get install ansible-core')
  })
})

import {describe, expect, it} from 'vitest'

import {cloudInitLogCommand, cloudInitWaitCommand, parseCloudInitStatus} from '../../src/cloud-init/status.js'

// Each sample is what `cloud-init status --wait --long` prints in the guest (the command
// cloudInitWaitCommand() returns). The 22.4 ones are the output of Debian 12's cloud-init
// 22.4.2 cmd/status.py itself (handle_status_args run over a status.json and result.json of that
// content: dots while waiting, then a line break and the report). The 24.x ones follow the
// templates of upstream's cmd/status.py (TABULAR_LONG_TMPL), not run here.

describe('cloud-init status --wait --long', () => {
  it('is the command run in the guest', () => {
    expect(cloudInitWaitCommand()).toBe('cloud-init status --wait --long')
    expect(cloudInitLogCommand(25)).toBe('sudo -n tail -n 25 /var/log/cloud-init-output.log')
  })

  it('22.4 (Debian 12), done: ok, the datasource as detail', () => {
    // cloud-init status --wait --long   (Debian 12 guest, seed read, all stages passed; exit 0)
    const output = [
      '..........................',
      'status: done',
      'boot_status_code: enabled-by-generator',
      'last_update: Mon, 30 Nov 2026 19:01:10 +0000',
      'detail:',
      'DataSourceNoCloud [seed=/dev/vdb][dsmode=net]',
      '',
    ].join('\n')
    expect(parseCloudInitStatus(output, 0)).toEqual({
      ok: true,
      status: 'done',
      detail: 'DataSourceNoCloud [seed=/dev/vdb][dsmode=net]',
      errors: [],
      warnings: [],
      finished: true,
      summary: 'done',
    })
  })

  it('22.4, error: failed, the errors are the detail lines', () => {
    // cloud-init status --wait --long   (Debian 12 guest whose user-data script exits 1; exit 1)
    const output = [
      '.....',
      'status: error',
      'boot_status_code: enabled-by-generator',
      'last_update: Mon, 30 Nov 2026 19:03:42 +0000',
      'detail:',
      "('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))",
      '',
    ].join('\n')
    const verdict = parseCloudInitStatus(output, 1)
    expect(verdict.ok).toBe(false)
    expect(verdict.status).toBe('error')
    expect(verdict.errors).toEqual(["('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))"])
    expect(verdict.detail).toBeUndefined()
    expect(verdict.summary).toBe("error: ('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))")
  })

  it('24.x, done: ok', () => {
    // cloud-init status --wait --long   (Ubuntu 24.04 guest, all stages passed; exit 0)
    const output = [
      '.....',
      'status: done',
      'extended_status: done',
      'boot_status_code: enabled-by-generator',
      'last_update: Thu, 01 Jan 1970 00:00:52 +0000',
      'detail: DataSourceNoCloud [seed=/dev/sr0]',
      'errors: []',
      'recoverable_errors: {}',
      '',
    ].join('\n')
    expect(parseCloudInitStatus(output, 0)).toEqual({
      ok: true,
      status: 'done',
      extendedStatus: 'done',
      detail: 'DataSourceNoCloud [seed=/dev/sr0]',
      errors: [],
      warnings: [],
      finished: true,
      summary: 'done',
    })
  })

  it('24.x, degraded (exit 2): ok, the recoverable errors as warnings', () => {
    // cloud-init status --wait --long   (user-data with a deprecated key; exit 2)
    const output = [
      '...',
      'status: done',
      'extended_status: degraded done',
      'boot_status_code: enabled-by-generator',
      'last_update: Thu, 01 Jan 1970 00:00:49 +0000',
      'detail: DataSourceNoCloud [seed=/dev/sr0]',
      'errors: []',
      'recoverable_errors:',
      'DEPRECATED:',
      '\t- Deprecated cloud-config provided: chpasswd.list:  Deprecated in version 22.2. Use ``users`` instead.',
      'WARNING:',
      "\t- Invalid cloud-config provided: Please run 'sudo cloud-init schema --system' to see the schema errors.",
      '',
    ].join('\n')
    const verdict = parseCloudInitStatus(output, 2)
    expect(verdict.ok).toBe(true)
    expect(verdict.extendedStatus).toBe('degraded done')
    expect(verdict.warnings).toEqual([
      'DEPRECATED: Deprecated cloud-config provided: chpasswd.list:  Deprecated in version 22.2. Use ``users`` instead.',
      "WARNING: Invalid cloud-config provided: Please run 'sudo cloud-init schema --system' to see the schema errors.",
    ])
    expect(verdict.summary).toBe('done with 2 recoverable error(s)')
    // Ubuntu's and RHEL's packages return 0 for the same state.
    expect(parseCloudInitStatus(output, 0).ok).toBe(true)
  })

  it('24.x, error: failed with the errors and the warnings', () => {
    // cloud-init status --wait --long   (user-data runcmd that exits 1; exit 1)
    const output = [
      '........',
      'status: error',
      'extended_status: error - done',
      'boot_status_code: enabled-by-generator',
      'last_update: Thu, 01 Jan 1970 00:01:13 +0000',
      'detail: DataSourceNoCloud [seed=/dev/sr0]',
      'errors:',
      "\t- ('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))",
      'recoverable_errors:',
      'WARNING:',
      '\t- Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)',
      "\t- Running module scripts_user (<module 'cloudinit.config.cc_scripts_user' from '/usr/lib/python3/dist-packages/cloudinit/config/cc_scripts_user.py'>) failed",
      '',
    ].join('\n')
    const verdict = parseCloudInitStatus(output, 1)
    expect(verdict.ok).toBe(false)
    expect(verdict.finished).toBe(true)
    expect(verdict.detail).toBe('DataSourceNoCloud [seed=/dev/sr0]')
    expect(verdict.errors).toEqual(["('scripts_user', RuntimeError('Runparts: 1 failures (runcmd) in 1 attempted commands'))"])
    expect(verdict.warnings).toHaveLength(2)
    expect(verdict.warnings[0]).toBe('WARNING: Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)')
    expect(verdict.summary).toMatch(/^error: \('scripts_user'/)
  })

  it('an error while later stages still run is failed and not finished', () => {
    // cloud-init status --wait --long   (init stage failed, final stage not yet run; exit 1)
    const output = 'status: error\nextended_status: error - running\ndetail: DataSourceNoCloud [seed=/dev/sr0]\nerrors:\n\t- boom\n'
    const verdict = parseCloudInitStatus(output, 1)
    expect(verdict.ok).toBe(false)
    expect(verdict.finished).toBe(false)
    expect(verdict.errors).toEqual(['boom'])
  })

  it('disabled cloud-init is a failure: the seed was not applied', () => {
    // cloud-init status --wait --long   (guest booted with cloud-init=disabled; exit 0)
    const output = [
      'status: disabled',
      'boot_status_code: disabled-by-kernel-cmdline',
      'detail:',
      'Cloud-init disabled by kernel parameter cloud-init=disabled',
      '',
    ].join('\n')
    const verdict = parseCloudInitStatus(output, 0)
    expect(verdict.ok).toBe(false)
    expect(verdict.summary).toMatch(/disabled/)
  })

  it('no cloud-init at all (command not found) is a failure naming the exit code', () => {
    // cloud-init status --wait --long   (guest without cloud-init: "bash: cloud-init: command not found"; exit 127)
    const verdict = parseCloudInitStatus('', 127)
    expect(verdict.ok).toBe(false)
    expect(verdict.status).toBe('')
    expect(verdict.summary).toBe('no cloud-init status (the command exited with 127)')
  })

  it('a "done" with an unexpected exit code is not taken as success', () => {
    expect(parseCloudInitStatus('status: done\n', 255).ok).toBe(false)
  })
})

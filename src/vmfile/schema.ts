import {isIP} from 'node:net'

import {parseConstraint} from '../box/version.js'
import type {Check, ObjectNode, SchemaNode} from './schema-types.js'

const checkConstraint: Check = (value) => {
  if (typeof value !== 'string') return undefined
  try {
    parseConstraint(value)
    return undefined
  } catch (error) {
    return `is not a version constraint: ${(error as Error).message}`
  }
}

const checkHostIp: Check = (value) =>
  typeof value === 'string' && isIP(value) === 0 ? `must be an IP address such as 127.0.0.1, not "${value}"` : undefined

const checkCidr: Check = (value) => {
  if (typeof value !== 'string') return undefined
  const [address = '', prefix, ...rest] = value.split('/')
  const bits = prefix === undefined ? 24 : Number(prefix)
  if (rest.length > 0 || isIP(address) !== 4 || !Number.isInteger(bits) || bits < 1 || bits > 30) {
    return `must be an IPv4 address with an optional prefix length, such as 192.168.56.10/24, not "${value}"`
  }
  return undefined
}

const checkAbsoluteGuestPath: Check = (value) =>
  typeof value === 'string' && !value.startsWith('/') ? `must be an absolute path in the guest, not "${value}"` : undefined

/** Below this no Linux guest boots; a smaller value is a typo (0.4, 1K). */
export const MIN_MEMORY_MIB = 32

const port = (description: string): SchemaNode => ({kind: 'integer', min: 1, max: 65535, description})
const stringOrList = (description: string): SchemaNode => ({
  kind: 'anyOf',
  expected: 'a string or a list of strings',
  description,
  options: [{kind: 'string'}, {kind: 'array', items: {kind: 'string'}}],
})
const runWhen: SchemaNode = {
  kind: 'string',
  enum: ['once', 'always', 'never'],
  default: 'once',
  description: 'When the provisioner runs: on the first up only, on every up, or only when named.',
}
const provisionerName: SchemaNode = {kind: 'string', description: 'A name for --provision-with and messages.'}

const shellProvisioner: ObjectNode = {
  kind: 'object',
  description: 'Runs a shell script in the guest.',
  fields: {
    type: {kind: 'string', enum: ['shell']},
    name: provisionerName,
    run: runWhen,
    inline: stringOrList('Script text; a list is joined with newlines.'),
    path: {kind: 'string', description: 'A script on the host, relative to the Vmfile, uploaded and run.'},
    args: stringOrList('Arguments passed to the script.'),
    env: {kind: 'map', values: {kind: 'scalar'}, description: 'Environment variables for the script.'},
    privileged: {kind: 'boolean', default: true, description: 'Run as root through sudo.'},
    upload_path: {kind: 'string', default: '/tmp/vm-shell', description: 'Where the script is uploaded in the guest.'},
  },
  rules: [
    (value) => {
      const hasInline = value.inline !== undefined
      const hasPath = value.path !== undefined
      if (hasInline && hasPath) return [{message: 'set "inline" or "path", not both'}]
      if (!hasInline && !hasPath) return [{message: 'needs "inline" (script text) or "path" (a script file)'}]
      return []
    },
  ],
}

const fileProvisioner: ObjectNode = {
  kind: 'object',
  description: 'Copies a file or directory from the host into the guest.',
  fields: {
    type: {kind: 'string', enum: ['file']},
    name: provisionerName,
    run: runWhen,
    source: {kind: 'string', description: 'File or directory on the host, relative to the Vmfile.'},
    destination: {kind: 'string', check: checkAbsoluteGuestPath, description: 'Absolute path in the guest.'},
  },
  required: ['source', 'destination'],
}

const ansibleProvisioner: ObjectNode = {
  kind: 'object',
  description: 'Runs an Ansible playbook from the host against the machine.',
  fields: {
    type: {kind: 'string', enum: ['ansible']},
    name: provisionerName,
    run: runWhen,
    playbook: {kind: 'string', description: 'Playbook path, relative to the Vmfile.'},
    extra_vars: {kind: 'map', values: {kind: 'any'}, description: 'Variables passed with --extra-vars.'},
    become: {kind: 'boolean', default: false, description: 'Run tasks with become (sudo).'},
  },
  required: ['playbook'],
}

const forwardedPort: ObjectNode = {
  kind: 'object',
  description: 'A port on the host forwarded to a port in the guest.',
  fields: {
    guest: port('Port in the guest.'),
    host: port('Port on the host.'),
    host_ip: {
      kind: 'string',
      default: '127.0.0.1',
      check: checkHostIp,
      description: 'Host address to listen on; 0.0.0.0 exposes the port to the network.',
    },
    protocol: {kind: 'string', enum: ['tcp', 'udp'], default: 'tcp'},
    auto_correct: {kind: 'boolean', default: false, description: 'Pick a free host port when this one is taken.'},
  },
  required: ['guest', 'host'],
}

const macAddress = {regex: '^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$', hint: 'a MAC address such as 52:54:00:12:34:56'}

/** A NIC needs a unicast address: the lowest bit of the first byte marks multicast (and broadcast). */
const checkUnicastMac: Check = (value) => {
  if (typeof value !== 'string' || !new RegExp(macAddress.regex).test(value)) return undefined
  if (/^(ff:){5}ff$/i.test(value)) return `must be a unicast address, not the broadcast address "${value}"`
  if ((Number.parseInt(value.slice(0, 2), 16) & 1) === 1)
    return `must be a unicast address, not the multicast address "${value}" (the first byte must be even, e.g. 52:54:00:...)`
  if (/^(00:){5}00$/.test(value)) return `must not be all zeros ("${value}")`
  return undefined
}

const network: SchemaNode = {
  kind: 'tagged',
  description: 'An extra network interface.',
  variants: {
    bridged: {
      kind: 'object',
      description: 'A NIC on an existing host bridge.',
      fields: {
        type: {kind: 'string', enum: ['bridged']},
        bridge: {kind: 'string', description: 'Name of the host bridge, e.g. br0.'},
        mac: {kind: 'string', pattern: macAddress, check: checkUnicastMac},
        ip: {kind: 'string', check: checkCidr, description: 'Static address; DHCP when absent.'},
      },
      required: ['bridge'],
    },
    private: {
      kind: 'object',
      description: 'An isolated network shared by the machines that name it; no root needed.',
      fields: {
        type: {kind: 'string', enum: ['private']},
        ip: {kind: 'string', check: checkCidr, description: 'Static address with prefix, e.g. 192.168.56.10/24.'},
        name: {
          kind: 'string',
          description: "Network name; machines naming the same one share it, across projects too. Default: the project's own network.",
        },
        mac: {kind: 'string', pattern: macAddress, check: checkUnicastMac},
      },
      required: ['ip'],
    },
  },
}

const syncedFolder: ObjectNode = {
  kind: 'object',
  description: 'A host directory made visible in the guest.',
  fields: {
    host: {kind: 'string', description: 'Host directory, relative to the Vmfile.'},
    guest: {kind: 'string', check: checkAbsoluteGuestPath, description: 'Absolute path in the guest.'},
    type: {
      kind: 'string',
      enum: ['auto', '9p', 'rsync'],
      default: 'auto',
      description: '9p shares live both ways; rsync copies host to guest.',
    },
    read_only: {kind: 'boolean', default: false},
    exclude: {kind: 'array', items: {kind: 'string'}, description: 'rsync patterns to leave out (.vm/ always is).'},
  },
  required: ['host', 'guest'],
}

/**
 * The folder a machine gets when neither it nor the top level lists synced_folders: the
 * project directory. Not a `default:` of the key, because lists add up from the top level to
 * each machine and this folder applies only when no level lists any, which a JSON Schema
 * default cannot say; defaults.ts applies it.
 */
export const DEFAULT_SYNCED_FOLDER = {host: '.', guest: '/vm'} as const

const checkLibvirtUri: Check = (value) =>
  typeof value === 'string' && !/^[A-Za-z][A-Za-z0-9.-]*(\+[A-Za-z0-9]+)?:\/\/[^\s]*$/.test(value)
    ? `must be a libvirt URI such as qemu:///system or qemu+ssh://user@host/system, not "${value}"`
    : undefined

const libvirtName = {regex: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', hint: 'letters, digits, "-", "_" and "." (starting with a letter or digit)'}

/** Keys a machine may set; the top level sets the same keys as defaults for every machine. */
export const machineFields: Record<string, SchemaNode> = {
  provider: {
    kind: 'string',
    enum: ['qemu', 'libvirt'],
    default: 'qemu',
    description:
      'The engine that runs the machine: QEMU on this host, or a libvirt daemon (this host or a remote one, see libvirt). A machine keeps the engine it was created with.',
  },
  libvirt: {
    kind: 'object',
    description: 'Where machines of provider libvirt run.',
    fields: {
      uri: {
        kind: 'string',
        check: checkLibvirtUri,
        description: 'The libvirt daemon, e.g. qemu+ssh://ops@build-3/system. Default: LIBVIRT_DEFAULT_URI when set, else qemu:///system.',
        examples: ['qemu:///system', 'qemu+ssh://ops@build-3/system'],
      },
      pool: {
        kind: 'string',
        pattern: libvirtName,
        default: 'default',
        description: 'Storage pool for box and machine volumes (it must exist).',
      },
      network: {
        kind: 'string',
        pattern: libvirtName,
        default: 'vmfile',
        description: "The libvirt NAT network of the machines' first NIC (created with DHCP when absent).",
      },
    },
  },
  box: {kind: 'string', description: 'Box to boot: a name in the store or registry (org/name).', examples: ['vmfile/debian-12']},
  box_version: {kind: 'string', check: checkConstraint, description: 'Version constraint, e.g. ">= 1.2, < 2".'},
  box_url: {kind: 'string', description: 'Where to get the box when it is not in the store: a URL, path or catalog.'},
  cpus: {kind: 'integer', min: 1, max: 256, default: 2, description: 'Virtual CPUs.'},
  memory: {kind: 'size', default: 1024, min: MIN_MEMORY_MIB, description: 'Memory: MiB, or a size such as 1G (at least 32M).'},
  disk: {kind: 'size', description: "Disk size of the machine's overlay (e.g. 20G); the box's size when absent."},
  accel: {kind: 'string', enum: ['auto', 'kvm', 'tcg'], default: 'auto', description: 'auto uses KVM when it works, else TCG.'},
  boot_timeout: {kind: 'integer', min: 1, default: 300, description: 'Seconds to wait for SSH after boot.'},
  hostname: {
    kind: 'string',
    pattern: {
      regex: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
      hint: 'a host name such as web or web.example',
    },
    description: 'Guest host name.',
  },
  vnc: {kind: 'boolean', default: false, description: 'Expose the display over VNC on 127.0.0.1.'},
  ssh: {
    kind: 'object',
    description: 'How vm logs in.',
    fields: {
      user: {
        kind: 'string',
        description: "Login user; absent: the box's (its metadata's ssh_user), else vagrant as Vagrant's boxes expect.",
      },
      username: {kind: 'string', description: 'The same as user, as Vagrant spells it (set one of them).'},
      port: {kind: 'integer', min: 1, max: 65535, default: 22, description: 'SSH port in the guest.'},
      forward_agent: {kind: 'boolean', default: false, description: 'Forward the SSH agent.'},
      private_key_path: stringOrList(
        "Private key(s) for the first login, relative to the Vmfile; they replace the insecure keys (vm's and Vagrant's) as in Vagrant.",
      ),
      insert_key: {
        kind: 'boolean',
        default: true,
        description: 'Replace the first-login key with one made for the machine; false keeps trusting the configured or insecure keys.',
      },
      password: {kind: 'any', description: 'Not supported: vm logs in with SSH keys only (a Vmfile that sets it is refused).'},
    },
    rules: [
      (value) =>
        value.user !== undefined && value.username !== undefined
          ? [
              {
                key: 'username',
                message: 'is set together with "user": they are the same setting (username is Vagrant\'s name for it); keep one',
              },
            ]
          : [],
      (value) =>
        value.password === undefined
          ? []
          : [
              {
                key: 'password',
                message:
                  "is not supported: vm logs in with SSH keys only; put a public key in the guest user's ~/.ssh/authorized_keys and set ssh.private_key_path to its private key",
              },
            ],
    ],
  },
  nat: {
    kind: 'object',
    description: 'The first NIC: user-mode NAT, through which vm reaches SSH and forwarded ports.',
    fields: {
      isolated: {
        kind: 'boolean',
        default: false,
        description: "Cut the guest off from everything but the host's forwarded services (SSH, forwarded_ports): no route out, no DNS.",
      },
    },
  },
  cloud_init: {
    kind: 'object',
    description:
      'cloud-init for machines of a cloud-image box (a bare disk image added with vm box add --name): your user-data and network config, merged with the user-data vm writes to create the SSH user.',
    fields: {
      user_data: {kind: 'string', description: 'User-data in any cloud-init format (e.g. starting with #cloud-config).'},
      user_data_file: {kind: 'string', description: 'A file holding user-data, relative to the Vmfile.'},
      network_config: {kind: 'string', description: 'cloud-init network config (version 1 or 2); DHCP on the first NIC when absent.'},
      network_config_file: {kind: 'string', description: 'A file holding the network config, relative to the Vmfile.'},
    },
    rules: [
      (value) => [
        ...(value.user_data !== undefined && value.user_data_file !== undefined
          ? [{message: 'set "user_data" or "user_data_file", not both'}]
          : []),
        ...(value.network_config !== undefined && value.network_config_file !== undefined
          ? [{message: 'set "network_config" or "network_config_file", not both'}]
          : []),
      ],
    ],
  },
  forwarded_ports: {kind: 'array', items: forwardedPort, description: 'Ports forwarded from the host to the guest.'},
  networks: {kind: 'array', items: network, description: 'Extra NICs (the first NIC is always user-mode NAT).'},
  synced_folders: {
    kind: 'anyOf',
    expected: 'false or a list of folders',
    description: `Host folders in the guest; the project directory appears at ${DEFAULT_SYNCED_FOLDER.guest} unless this is false.`,
    options: [
      {kind: 'literal', value: false},
      {kind: 'array', items: syncedFolder},
    ],
  },
  provision: {
    kind: 'array',
    description: 'Provisioners, run in order.',
    items: {kind: 'tagged', variants: {shell: shellProvisioner, file: fileProvisioner, ansible: ansibleProvisioner}},
  },
}

const machineNameKey = {regex: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', hint: 'letters, digits, "-", "_" and "." (starting with a letter or digit)'}

export const machineNode: ObjectNode = {
  kind: 'object',
  description: 'A machine; unset keys are inherited from the top level.',
  fields: {
    ...machineFields,
    primary: {kind: 'boolean', default: false, description: 'The machine vm ssh uses when no name is given.'},
    autostart: {kind: 'boolean', default: true, description: 'Started by a vm up without names.'},
  },
}

export const vmfileSchema: ObjectNode = {
  kind: 'object',
  description: 'A vmfile project: one or more QEMU machines.',
  fields: {
    ...machineFields,
    machines: {
      kind: 'map',
      key: machineNameKey,
      values: machineNode,
      description: 'Named machines; without it the Vmfile defines one machine, "default".',
    },
  },
  rules: [
    (value) => {
      const machines = value.machines
      const problems: Array<{key?: string; message: string}> = []
      if (machines === null || typeof machines !== 'object' || Array.isArray(machines)) {
        if (value.box === undefined && value.box_url === undefined) {
          problems.push({key: 'box', message: 'is required: name the box to boot, e.g. "box: vmfile/debian-12"'})
        }
        return problems
      }
      const entries = Object.entries(machines as Record<string, Record<string, unknown> | null>)
      if (entries.length === 0) problems.push({key: 'machines', message: 'must name at least one machine'})
      let primary: string | undefined
      for (const [name, machine] of entries) {
        if (value.box === undefined && value.box_url === undefined && machine?.box === undefined && machine?.box_url === undefined) {
          problems.push({key: `machines.${name}`, message: 'needs a box: set "box" here or at the top level'})
        }
        if (machine?.primary === true) {
          if (primary === undefined) primary = name
          else problems.push({key: `machines.${name}.primary`, message: `only one machine can be primary ("${primary}" already is)`})
        }
      }
      return problems
    },
  ],
}

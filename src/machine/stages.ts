/**
 * The stages of a boot after the engine has started the machine. A boot is done when every one has finished; until
 * then machine.json lists the ones left (`pending`), so a `vm up` that finds the machine
 * running finishes them instead of calling it "already running". Above all, a first boot is not
 * done until the box's well-known insecure key has been replaced by the machine's own.
 */
export type BootStage = 'cloud-init' | 'folders' | 'key' | 'networks' | 'provision' | 'ssh'

/** In the order they run. */
export const BOOT_STAGES: readonly BootStage[] = ['ssh', 'key', 'cloud-init', 'networks', 'folders', 'provision']

export interface StagedRecord {
  ssh?: {keyReplaced: boolean} | undefined
  /**
   * Set for machines of cloud-image boxes: cloud-init installs the machine's own key from the
   * first boot (no insecure key, no key stage), and every boot waits for cloud-init to finish.
   */
  cloudInit?: unknown
  /** Stages of the current boot still to do; absent in records written before stages were kept. */
  pending?: BootStage[] | undefined
}

/**
 * Every stage of a new boot: the key stage only until the machine's own key is in place, the
 * cloud-init stage only for machines of cloud-image boxes.
 */
export function stagesForBoot(record: StagedRecord): BootStage[] {
  const keyReplaced = record.ssh?.keyReplaced === true
  const cloudInit = record.cloudInit !== undefined
  return BOOT_STAGES.filter((stage) => (stage !== 'key' || !keyReplaced) && (stage !== 'cloud-init' || cloudInit))
}

/**
 * The stages a running machine has not finished. Whatever the record says, a machine whose key
 * was never replaced still needs SSH and the key (the insecure key must not stay trusted). An
 * older record without `pending` is done once its key is replaced.
 */
export function unfinishedStages(record: StagedRecord): BootStage[] {
  const keyReplaced = record.ssh?.keyReplaced === true
  const pending = new Set<BootStage>(record.pending ?? (keyReplaced ? [] : BOOT_STAGES))
  if (!keyReplaced) {
    pending.add('ssh')
    pending.add('key')
  }
  return BOOT_STAGES.filter((stage) => pending.has(stage) && (stage !== 'cloud-init' || record.cloudInit !== undefined))
}

/** The pending list once `stage` has finished. */
export function finishStage(pending: readonly BootStage[], stage: BootStage): BootStage[] {
  return pending.filter((other) => other !== stage)
}

/** Whether the box's insecure key may still be trusted by the guest. */
export function firstBootUnfinished(record: StagedRecord): boolean {
  return unfinishedStages(record).includes('key')
}

/** "synced folders, provisioners" for messages. */
export function describeStages(stages: readonly BootStage[]): string {
  const names: Record<BootStage, string> = {
    ssh: 'waiting for SSH',
    key: 'replacing the insecure key',
    'cloud-init': 'waiting for cloud-init',
    networks: 'guest networks',
    folders: 'synced folders',
    provision: 'provisioners',
  }
  return stages.map((stage) => names[stage]).join(', ')
}

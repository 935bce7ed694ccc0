import {findCredential} from '../credentials.js'
import {isValidBoxVersion} from '../fields.js'
import {newestSatisfying} from '../version.js'
import {readSmallBody, RegistryClient} from './client.js'
import {parseOciReference, type OciReference} from './reference.js'

export interface TagOptions {
  insecure?: boolean | undefined
  cacert?: string | undefined
  signal?: AbortSignal | undefined
  env?: NodeJS.ProcessEnv | undefined
}

/** Every tag of the repository (GET /v2/<repo>/tags/list, following Link: rel="next"). */
export async function listTags(ref: Pick<OciReference, 'host' | 'repository'>, options: TagOptions = {}): Promise<string[]> {
  const client = new RegistryClient(ref, {
    actions: 'pull',
    insecure: options.insecure,
    cacert: options.cacert,
    credential: await findCredential(ref.host, options.env ?? process.env),
    signal: options.signal,
  })
  try {
    const tags: string[] = []
    let next: string | undefined = client.repoPath('tags/list?n=1000')
    for (let pages = 0; next !== undefined && pages < 100; pages++) {
      const response = await client.send('GET', next)
      const body = (await readSmallBody(response, 16 << 20)).toString('utf8')
      if (response.status !== 200) throw client.statusError('GET tags/list', response.status, body)
      const parsed = JSON.parse(body) as {tags?: unknown}
      if (Array.isArray(parsed.tags)) for (const tag of parsed.tags) if (typeof tag === 'string') tags.push(tag)
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(response.headers.link ?? ''))
      next = link === null ? undefined : link[1]
    }
    return tags
  } finally {
    client.close()
  }
}

/** The newest tag that is a box version meeting `constraint` (other tags, such as latest, are ignored). */
export async function newestTag(source: string, constraint: string | undefined, options: TagOptions = {}): Promise<string | undefined> {
  const tags = await listTags(parseOciReference(source), options)
  return newestSatisfying(
    tags.filter((tag) => isValidBoxVersion(tag)),
    constraint,
  )
}

// Bundles the CLI into dist/ with esbuild: one module for start-up plus lazily loaded chunks,
// so `vm` loads a few files instead of hundreds (start-up is a feature; see bench/startup).
import {createHash} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'

import {build} from 'esbuild'

/**
 * @oclif/core loads semver at start-up for one check only: whether this Node meets the
 * "engines" of @oclif/core's own package.json, which it finds through __dirname. In an ES
 * module bundle __dirname does not exist, so that check always ends in its catch and never
 * warns: loading semver (a large part of oclif's start-up) buys nothing. Nothing else bundled
 * uses semver (box versions have their own comparison, src/box/version.ts); the build fails
 * if something starts to.
 */
const semverOnlyForOclifEngineCheck = {
  name: 'semver-only-for-oclif-engine-check',
  setup(pluginBuild) {
    pluginBuild.onResolve({filter: /^semver(\/.*)?$/}, (args) => {
      if (!/node_modules[\\/]@oclif[\\/]core[\\/]lib[\\/]index\.js$/.test(args.importer))
        return {errors: [{text: `semver imported by ${args.importer}: scripts/bundle.js stubs it for @oclif/core only`}]}
      return {path: 'semver', namespace: 'semver-stub'}
    })
    pluginBuild.onLoad({filter: /.*/, namespace: 'semver-stub'}, () => ({
      contents: 'module.exports = {satisfies: () => true}',
      loader: 'js',
    }))
  },
}

/**
 * The large CommonJS packages of start-up, @oclif/core and yaml (read by every command that
 * loads a Vmfile), are each bundled on their own into dist/NAME.cjs, which the ES module bundle
 * loads through src/cli/code-cache.ts, i.e. compiled from a V8 code cache in vm's cache dir
 * (Node 20 has no compile cache; compiling them was a large part of every start-up). Every
 * `import ... from 'PACKAGE'` in the bundle gets a module re-exporting the package's names.
 */
const CACHED_PACKAGES = {'@oclif/core': 'oclif-core', yaml: 'yaml'}
const requireForNames = createRequire(import.meta.url)

const throughCodeCache = {
  name: 'cjs-packages-through-code-cache',
  setup(pluginBuild) {
    for (const name of Object.keys(CACHED_PACKAGES)) {
      const escaped = name.replaceAll(/[/.]/g, (char) => `\\${char}`)
      pluginBuild.onResolve({filter: new RegExp(`^${escaped}(/.*)?$`)}, (args) => {
        if (args.path !== name)
          return {errors: [{text: `${args.path} imported by ${args.importer}: only '${name}' itself is bundled (scripts/bundle.js)`}]}
        return {path: name, namespace: 'code-cached'}
      })
    }
    pluginBuild.onLoad({filter: /.*/, namespace: 'code-cached'}, (args) => {
      const names = Object.keys(requireForNames(args.path)).filter((key) => key !== 'default' && /^[A-Za-z_$][\w$]*$/.test(key))
      return {
        contents: [
          `import path from 'node:path'`,
          `import {requireCached} from ${JSON.stringify(path.resolve('src/cli/code-cache.ts'))}`,
          `import {packageRoot} from ${JSON.stringify(path.resolve('src/state/package-root.ts'))}`,
          `const pkg = requireCached(path.join(packageRoot(), 'dist', ${JSON.stringify(`${CACHED_PACKAGES[args.path]}.cjs`)}))`,
          `export const {${names.join(', ')}} = pkg`,
          `export default pkg.__esModule ? pkg.default : pkg`,
        ].join('\n'),
        loader: 'js',
        resolveDir: process.cwd(),
      }
    })
  },
}

/**
 * Readies a CommonJS bundle for code-cache.ts. Code compiled from a V8 code cache loses
 * vm.Script's importModuleDynamically (and on Node 20 that option is experimental and warns):
 * import() calls (oclif's, of commands and hooks) go through the __vmImport that code-cache.ts
 * passes in, an import() of the ES module bundle. The file is made ASCII (below), and its last
 * line is its hash (code-cache.ts, BUILD_HASH_PREFIX).
 */
function rewriteImports(file) {
  const code = readFileSync(file, 'utf8')
    .replaceAll(/(?<![\w$.])import\((?!\))/g, '__vmImport(')
    // ASCII only, so that code-cache.ts reads the file as one-byte text (latin1): one non-ASCII
    // character (esbuild keeps them raw in regular expressions, e.g. ansi-regex's CSI) makes V8
    // hold the whole file as two-byte text, slower to decode, hash and compile. A \uXXXX escape
    // means the same in strings, templates and regular expressions.
    // eslint-disable-next-line no-control-regex
    .replaceAll(/[^\x00-\x7f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const leftover = code.match(/(?<![\w$.])import\((?!\))/)
  if (leftover)
    throw new Error(`${file}: an import() not rewritten to __vmImport near ${code.slice(leftover.index - 40, leftover.index + 40)}`)
  // The key of the file's code cache, so that code-cache.ts need not hash the file at every start-up.
  writeFileSync(file, `${code}\n//# vmBuildHash=${createHash('sha256').update(code).digest('hex')}\n`)
}

/** What every bundle of the package shares: minified code for Node 20 in dist/. */
const NODE_BUNDLE = {
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  minifySyntax: true,
  minifyWhitespace: true,
  minifyIdentifiers: true,
  logLevel: 'warning',
}

/** A CommonJS bundle read through the V8 code cache (dist/NAME.cjs). */
const CACHED_CJS = {
  ...NODE_BUNDLE,
  outExtension: {'.js': '.cjs'},
  format: 'cjs',
  legalComments: 'linked',
  // Only loaded by oclif when running from TypeScript sources, never in the built CLI.
  external: ['typescript', 'ts-node', 'tsx'],
}

for (const [name, file] of Object.entries(CACHED_PACKAGES)) {
  await build({
    ...CACHED_CJS,
    plugins: [semverOnlyForOclifEngineCheck],
    entryPoints: {[file]: name},
  })
  rewriteImports(`dist/${file}.cjs`)
}

/**
 * In the bundles of the fast paths (below), a Node built-in that Node's own start-up has not
 * loaded (net, fs/promises, readline, child_process ...) is loaded when the code first uses one
 * of its exports, not when a module that imports it is initialised: most of what those modules
 * import is for paths a given run does not take, and loading net or readline costs several ms
 * each. The module is a Proxy over the built-in's export names (read here, at build time).
 * Built-ins whose export is itself a function (events, stream ...) are left alone: a Proxy of
 * an object cannot be called or constructed.
 */
const LAZY_BUILTINS = [
  'child_process',
  'crypto',
  'dgram',
  'dns',
  'fs/promises',
  'http',
  'https',
  'net',
  'os',
  'readline',
  'readline/promises',
  'stream/promises',
  'timers/promises',
  'tls',
  'tty',
  'v8',
  'worker_threads',
  'zlib',
]

const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(pluginBuild) {
    const escaped = LAZY_BUILTINS.map((name) => name.replaceAll('/', '\\/')).join('|')
    pluginBuild.onResolve({filter: new RegExp(`^(node:)?(${escaped})$`)}, (args) => {
      const name = args.path.replace(/^node:/, '')
      // The proxy's own require() of the built-in stays a plain external require.
      if (args.namespace === 'lazy-builtin') return {path: `node:${name}`, external: true}
      if (typeof requireForNames(`node:${name}`) === 'function') return {path: `node:${name}`, external: true}
      return {path: name, namespace: 'lazy-builtin'}
    })
    pluginBuild.onLoad({filter: /.*/, namespace: 'lazy-builtin'}, (args) => {
      const names = Object.keys(requireForNames(`node:${args.path}`))
      return {
        contents: [
          `let loaded`,
          `const load = () => (loaded ??= require(${JSON.stringify(`node:${args.path}`)}))`,
          `const names = ${JSON.stringify(names)}`,
          // Asked of any module by esbuild's interop and by await: no built-in has them.
          `const never = new Set(['__esModule', 'then'])`,
          `module.exports = new Proxy({}, {`,
          `  get: (_, key) => (never.has(key) ? undefined : load()[key]),`,
          `  has: (_, key) => key in load(),`,
          `  ownKeys: () => [...names],`,
          `  getOwnPropertyDescriptor: (_, key) =>`,
          `    names.includes(key) ? {configurable: true, enumerable: true, get: () => load()[key]} : undefined,`,
          `})`,
        ].join('\n'),
        loader: 'js',
        resolveDir: process.cwd(),
      }
    })
  },
}

/**
 * bin/run.js's fast path for these commands (src/cli/fast-entry.ts, dist/fast.cjs, required
 * before oclif) runs each from a bundle of its own, dist/fast-COMMAND.cjs (src/cli/fast/COMMAND.ts),
 * read through the V8 code cache. The point is to load no oclif: the build fails if one imports it.
 */
const FAST_COMMANDS = ['status', 'validate', 'init', 'global-status']

const withoutOclif = {
  name: 'fast-path-without-oclif',
  setup(pluginBuild) {
    pluginBuild.onResolve({filter: /^@oclif\//}, (args) => ({
      errors: [{text: `${args.path} imported by ${args.importer}: the fast path's bundles load no oclif (scripts/bundle.js)`}],
    }))
  },
}

/**
 * The CLI itself as CommonJS files compiled from the V8 code cache (Node 20 caches no compiled ES
 * modules; the CLI's ~40 ES module chunks were parsed and compiled at every start-up), each
 * loaded by a small module of its own that does nothing else:
 * - app: src/commands.ts and everything the commands import, loaded by dist/commands.js (the
 *   ES module oclif reads; src/cli/commands-entry.ts). A module imported lazily (import()) is
 *   inlined, and initialised only when a command first imports it.
 * - ssh-fast-path: `vm ssh`'s fast path (src/cli/ssh-fast-path.ts), loaded by dist/ssh-fast.cjs
 *   (src/cli/ssh-fast-entry.ts), which bin/run.js requires before oclif, the app or Node's ES
 *   module loader: CommonJS from end to end.
 * - dist/version.cjs: `vm --version` (src/cli/version.ts), required by bin/run.js: no ES module
 *   loader either (it costs ~10-20 ms to start).
 * - fast-COMMAND: the fast path of `vm status`, `vm validate`, `vm init` and `vm global-status`, loaded by dist/fast.cjs
 *   (src/cli/fast-entry.ts, built beside ssh-fast.cjs), which bin/run.js requires before oclif.
 * import.meta.url (package-root.ts) becomes the file's own URL.
 */
for (const [file, source, loader, format] of [
  ['app', 'src/commands.ts', {commands: 'src/cli/commands-entry.ts'}, 'esm'],
  [
    'ssh-fast-path',
    'src/cli/ssh-fast-path.ts',
    {'ssh-fast': 'src/cli/ssh-fast-entry.ts', fast: 'src/cli/fast-entry.ts', version: 'src/cli/version.ts'},
    'cjs',
  ],
  ...FAST_COMMANDS.map((command) => [`fast-${command}`, `src/cli/fast/${command}.ts`, {}, 'cjs']),
]) {
  await build({
    ...CACHED_CJS,
    plugins: [
      ...(file === 'app' ? [] : [lazyBuiltins]),
      ...(file.startsWith('fast-') ? [withoutOclif] : []),
      semverOnlyForOclifEngineCheck,
      throughCodeCache,
    ],
    entryPoints: {[file]: source},
    sourcemap: 'linked',
    define: {'import.meta.url': '__vmModuleUrl'},
    banner: {js: "var __vmModuleUrl=require('node:url').pathToFileURL(module.filename).href;"},
  })
  rewriteImports(`dist/${file}.cjs`)
  if (Object.keys(loader).length === 0) continue
  await build({
    entryPoints: loader,
    ...(format === 'cjs'
      ? {
          outExtension: {'.js': '.cjs'},
          define: {'import.meta.url': '__vmModuleUrl'},
          banner: {js: "var __vmModuleUrl=require('node:url').pathToFileURL(__filename).href;"},
          // The fast paths' loaders (bin/run.js requires them first) too.
          plugins: [lazyBuiltins],
        }
      : {}),
    ...NODE_BUNDLE,
    format,
  })
}

// What runs apart from the CLI: the network hub (its own process) and the JSON schema writer.
await build({
  entryPoints: {
    'json-schema': 'src/vmfile/json-schema.ts',
    hub: 'src/driver/qemu/network/hub-main.ts',
  },
  ...NODE_BUNDLE,
  splitting: true,
  format: 'esm',
  sourcemap: 'linked',
  legalComments: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // Bundled CommonJS dependencies call require() for Node built-ins.
  banner: {js: "import {createRequire as __vmCreateRequire} from 'node:module';const require=__vmCreateRequire(import.meta.url);"},
  external: ['typescript', 'ts-node', 'tsx'],
})

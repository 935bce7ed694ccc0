// Bundles the CLI into dist/ with esbuild: one module for start-up plus lazily loaded chunks,
// so `vm` loads a few files instead of hundreds (start-up is a feature; see bench/startup).
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
 * @oclif/core is CommonJS: it is bundled on its own into dist/oclif-core.cjs, which the ES
 * module bundle loads through src/cli/code-cache.ts, i.e. from a V8 code cache in vm's cache
 * dir (Node 20 has no compile cache; compiling oclif was a large part of every start-up). Every
 * `import ... from '@oclif/core'` in the bundle gets a module re-exporting its names.
 */
const oclifCoreNames = Object.keys(createRequire(import.meta.url)('@oclif/core')).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name))
const oclifCoreThroughCodeCache = {
  name: 'oclif-core-through-code-cache',
  setup(pluginBuild) {
    pluginBuild.onResolve({filter: /^@oclif\/core(\/.*)?$/}, (args) => {
      if (args.path !== '@oclif/core')
        return {errors: [{text: `${args.path} imported by ${args.importer}: only '@oclif/core' is bundled (scripts/bundle.js)`}]}
      return {path: '@oclif/core', namespace: 'oclif-core-cached'}
    })
    pluginBuild.onLoad({filter: /.*/, namespace: 'oclif-core-cached'}, () => ({
      contents: [
        `import path from 'node:path'`,
        `import {requireCached} from ${JSON.stringify(path.resolve('src/cli/code-cache.ts'))}`,
        `import {packageRoot} from ${JSON.stringify(path.resolve('src/state/package-root.ts'))}`,
        `const core = requireCached(path.join(packageRoot(), 'dist', 'oclif-core.cjs'))`,
        `export const {${oclifCoreNames.join(', ')}} = core`,
        `export default core`,
      ].join('\n'),
      loader: 'js',
      resolveDir: process.cwd(),
    }))
  },
}

await build({
  plugins: [semverOnlyForOclifEngineCheck],
  entryPoints: {'oclif-core': '@oclif/core'},
  outExtension: {'.js': '.cjs'},
  outdir: 'dist',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  minifySyntax: true,
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'linked',
  external: ['typescript', 'ts-node', 'tsx'],
  logLevel: 'warning',
})
// Code compiled from a V8 code cache loses vm.Script's importModuleDynamically (and on Node 20
// that option is experimental and warns): oclif's import() calls (commands, hooks) go through
// the __vmImport that code-cache.ts passes in, an import() of the ES module bundle.
const oclifCore = readFileSync('dist/oclif-core.cjs', 'utf8').replaceAll(/\bawait import\(/g, 'await __vmImport(')
const leftover = oclifCore.match(/(?<![\w$.])import\((?!\))/)
if (leftover)
  throw new Error(
    `dist/oclif-core.cjs: an import() not rewritten to __vmImport near ${oclifCore.slice(leftover.index - 40, leftover.index + 40)}`,
  )
writeFileSync('dist/oclif-core.cjs', oclifCore)

await build({
  plugins: [semverOnlyForOclifEngineCheck, oclifCoreThroughCodeCache],
  entryPoints: {
    commands: 'src/commands.ts',
    version: 'src/cli/version.ts',
    'json-schema': 'src/vmfile/json-schema.ts',
    hub: 'src/driver/qemu/network/hub-main.ts',
  },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  minifySyntax: true,
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  // Bundled CommonJS dependencies call require() for Node built-ins.
  banner: {js: "import {createRequire as __vmCreateRequire} from 'node:module';const require=__vmCreateRequire(import.meta.url);"},
  // Only loaded by oclif when running from TypeScript sources, never in the built CLI.
  external: ['typescript', 'ts-node', 'tsx'],
  logLevel: 'warning',
})

// Bundles the CLI into dist/ with esbuild: one module for start-up plus lazily loaded chunks,
// so `vm` loads a few files instead of hundreds (start-up is a feature; see bench/startup).
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

await build({
  plugins: [semverOnlyForOclifEngineCheck],
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

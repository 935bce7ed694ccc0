// Bundles the CLI into dist/ with esbuild: one module for start-up plus lazily loaded chunks,
// so `vm` loads a few files instead of hundreds (start-up is a feature; see bench/startup).
import {build} from 'esbuild'

await build({
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

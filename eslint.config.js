import js from '@eslint/js'
import tseslint from 'typescript-eslint'

// Layers stay honest: each import below has one home, and every other folder is refused it.
const SPAWN = {
  paths: ['node:child_process', 'child_process', 'cross-spawn'],
  home: 'src/process/',
  why: 'run programs through src/process/',
}
const YAML = {paths: ['yaml'], home: 'src/vmfile/', why: 'the Vmfile is parsed only in src/vmfile/'}
const QEMU = {
  patterns: ['**/driver/qemu/*', '**/driver/qemu/**'],
  home: 'src/driver/qemu/',
  why: 'QEMU is reached only through the driver registry (src/driver/registry.ts)',
}
// Commands stay thin: no process spawning, file access or templating in src/commands.
const THIN = {
  paths: ['node:fs', 'fs', 'node:fs/promises', 'handlebars'],
  home: undefined,
  why: 'commands call services; they do not touch files or templates',
}

function restrict(...rules) {
  const paths = rules.flatMap((rule) => (rule.paths ?? []).map((name) => ({name, message: rule.why})))
  const patterns = rules.flatMap((rule) => (rule.patterns === undefined ? [] : [{group: rule.patterns, message: rule.why}]))
  const result = {'no-restricted-imports': ['error', {paths, patterns}]}
  // import() of a restricted module is refused too.
  const dynamic = rules.flatMap((rule) =>
    (rule.paths ?? []).map((name) => ({selector: `ImportExpression[source.value='${name}']`, message: rule.why})),
  )
  if (dynamic.length > 0) result['no-restricted-syntax'] = ['error', ...dynamic]
  return result
}

function layerRules() {
  const homes = ['src/process/**', 'src/vmfile/**', 'src/driver/qemu/**', 'src/driver/registry.ts', 'src/commands/**']
  return [
    {files: ['src/**/*.ts'], ignores: homes, rules: restrict(SPAWN, YAML, QEMU)},
    {files: ['src/process/**/*.ts'], rules: restrict(YAML, QEMU)},
    {files: ['src/vmfile/**/*.ts'], rules: restrict(SPAWN, QEMU)},
    {files: ['src/driver/qemu/**/*.ts'], rules: restrict(SPAWN, YAML)},
    // The registry is where engines are made available by name.
    {files: ['src/driver/registry.ts'], rules: restrict(SPAWN, YAML)},
    {files: ['src/commands/**/*.ts'], rules: restrict(SPAWN, YAML, QEMU, THIN)},
  ]
}

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'boxes/dist/', 'schema/']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        performance: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
    },
  },
  ...layerRules(),
)

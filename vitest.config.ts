import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Some unit tests run the built CLI: the setup rebuilds dist/ when the sources are newer.
          globalSetup: ['test/global-setup-unit.ts'],
          // Each file's scratch directories live in a TMPDIR of its own, removed after it.
          setupFiles: ['test/helpers/private-tmp.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // Builds missing boxes in the main process, in the background while the unit files
          // run; each e2e file waits for the builds to end first (see both files).
          globalSetup: ['test/global-setup-e2e.ts'],
          setupFiles: ['test/helpers/e2e-await-boxes.ts'],
          // Real VMs under TCG on two cores: one file at a time, generous timeouts.
          poolOptions: {forks: {singleFork: true}},
          testTimeout: 600_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
})

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Each test starts its own baton-hub: one file at a time is kinder to a small machine.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // One line per test: the run reads as the list of what the integration does.
    reporters: ['verbose'],
  },
})

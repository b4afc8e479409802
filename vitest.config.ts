import { defineConfig } from 'vitest/config';

// Tests drive the real Python stack (MMDetection, pythonia, onnxruntime-node). Two files run at a
// time: much of a test's time is a Python child importing torch/mmdet (one core each), so two
// files on the 2-core CI machine took 1080 s where one at a time took 1848 s (2026-11-26). A test
// then runs up to ~1.4x slower than alone, hence the long timeouts (the longest, train.test.ts's
// real run, took 209 s alone and 279 s next to another file).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One tiny training run, started in the background and shared by the tests that only read a run.
    globalSetup: ['test/helpers/shared-run.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});

import { defineConfig } from 'vitest/config';

// Tests drive the real Python stack (MMDetection, pythonia, onnxruntime-node): long timeouts, and
// files run one at a time because the machine has 2 cores and each Python child is heavy.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});

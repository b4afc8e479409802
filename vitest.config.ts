import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The files that take minutes (real multi-process trainings, queues of runs), slowest first: on a
 * fresh clone vitest has no timings of its own and starts the largest files first, so one of these
 * could start last and leave a worker idle beside it for minutes. `npm test` prints the slowest
 * files at its end (scripts/test-times.mjs); this list follows that table.
 */
const SLOWEST_FIRST = ['distributed', 'sweep', 'train', 'run-safety', 'bench', 'analyze', 'report', 'infer-scale', 'full-disk'].map((name) => `/test/${name}.test.ts`);

class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = SLOWEST_FIRST.findIndex((end) => f.moduleId.endsWith(end));
      return i < 0 ? SLOWEST_FIRST.length : i;
    };
    const rest = await super.sort(files);
    return rest.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}

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
    sequence: { sequencer: SlowestFirst },
    reporters: ['default'],
  },
});
